"""The NinjaAPI that /api/ goes through, and what it says about each operation.

django-ninja generates the OpenAPI document from these declarations; the
behaviour stays in the views (chat.api and friends): each operation hands the
request to its view and returns the view's HttpResponse unchanged. Ninja
therefore parses no query or body itself (it would answer its own 422 where
the views answer `400 invalid` with their own words): query parameters,
request bodies and security are declared through `openapi_extra`, from the
pydantic classes in `schemas.py`, and the responses through ninja's
`response=`, which it documents and leaves alone when the view returns an
HttpResponse.

A method the path does not document goes to the view too, whose `allow()`
answers 405 in JSON with its Allow header; HEAD goes to the view as a GET.
"""

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema, Swagger
from ninja.openapi.schema import OpenAPISchema
from ninja.types import DictStrAny

from accounts import views as accounts_views
from chat import api as chat_api
from chat import drafts_views, notify_views, search_views
from chat.threads import api as threads_api
from chat.uploads import views as uploads_views
from integrations import api as integrations_api
from integrations import bots_api, commands_api
from integrations.exports import views as export_views
from integrations.outgoing import api as outgoing_api

from . import schemas as s

PREFIX = "/api/"
REF = "#/components/schemas/{model}"

# Who may call an operation: the session cookie (writes also need its CSRF
# token in X-CSRFToken) or a bearer token (no CSRF: a page cannot set it).
SESSION_READ: dict[str, list] = {"session": []}
SESSION_WRITE: dict[str, list] = {"session": [], "csrf": []}
BEARER: dict[str, list] = {"bearer": []}
SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "sessionid",
        "description": "The signed-in browser session (sign in at /accounts/login/).",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRFToken",
        "description": "With the session, on every request that is not GET or HEAD: the "
        "csrftoken cookie's value. Without it: 403 `csrf_failed`.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from /settings/tokens/ or POST /api/tokens/ "
        "(`Authorization: Bearer tc_...`). Read-only tokens may not write (403).",
    },
}


def _error_response(description: str) -> tuple[type[Schema], str]:
    return (s.Error, description)


ERRORS = {
    400: "Invalid input (`invalid`, `too_long`, ...).",
    401: "Not signed in (`not_authenticated`).",
    403: "Refused: `forbidden`, `not_member`, `csrf_failed`, a read-only token, or an account "
    "held until its address is verified or it sets up two-factor authentication.",
    404: "Nothing there that you may see (`not_found`, `no_such_room`).",
    405: "A method this path does not take (`method_not_allowed`); see the Allow header.",
    409: "A newer version is stored (`conflict`).",
    413: "Too large (`too_large`, `quota_exceeded`).",
    429: "Too many requests (`rate_limited`).",
    503: "What it needs cannot be reached now (`unavailable`); try again later.",
}


@dataclass
class Op:
    """One method of a path: what it takes and what it answers."""

    summary: str
    responses: dict[int, Any]
    errors: Sequence[int] = ()
    body: type[Schema] | None = None
    multipart: bool = False
    # Its parameters besides the path's: query() and header() below.
    query: Sequence[DictStrAny] = ()
    # Who may call it; None: anyone (the answer says who you are).
    security: list[dict[str, list]] | None = field(default_factory=list)
    description: str = ""
    # A 200 that is a file of this media type, not JSON (an export's download).
    file: str = ""


def query(name: str, schema: DictStrAny, description: str) -> DictStrAny:
    return {
        "in": "query",
        "name": name,
        "required": False,
        "schema": schema,
        "description": description,
    }


def header(name: str, schema: DictStrAny, description: str) -> DictStrAny:
    return {**query(name, schema, description), "in": "header"}


INT = {"type": "integer", "minimum": 0}


class Docs(Swagger):
    """Ninja's Swagger UI (its own copy, served from this site) in a page that keeps the CSP.

    Ninja's page is already free of inline script; this one also hands the
    session's CSRF token to "Try it out", whatever the API's auth setting.
    """

    template = "api_schema/docs.html"


class TeamChatAPI(NinjaAPI):
    """NinjaAPI plus the request bodies and security schemes declared outside ninja's parsing."""

    body_models: list[type[Schema]]

    def set_default_exception_handlers(self) -> None:
        # None: what a view raises goes on to Django as before (Http404,
        # PermissionDenied, a 500 with its logging), never to ninja's own
        # JSON or traceback answers.
        pass

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: DictStrAny | None = None
    ) -> OpenAPISchema:
        # Always the paths as clients write them, wherever the page asking is.
        schema = super().get_openapi_schema(path_prefix=PREFIX.lstrip("/"), path_params={})
        components = schema.setdefault("components", {})
        models = components.setdefault("schemas", {})
        for model in self.body_models:
            found = model.model_json_schema(ref_template=REF)
            models.update(found.pop("$defs", {}))
            models[model.__name__] = found
        models.setdefault("Error", s.Error.model_json_schema(ref_template=REF))
        components["securitySchemes"] = SECURITY_SCHEMES
        for operations in schema["paths"].values():
            for operation in operations.values():
                media = FILE_ANSWERS.get(operation.get("operationId", ""))
                if media:
                    operation["responses"].pop(200, None)  # ninja's key is the number
                    operation["responses"]["200"] = {
                        "description": "The file, as an attachment.",
                        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
                    }
                for status, response in operation["responses"].items():
                    content = response.get("content", {}).get("application/json", {})
                    if content.get("schema") == {"$ref": REF.format(model="Error")}:
                        response["description"] = ERRORS[int(status)]
        return schema


api = TeamChatAPI(
    title="TeamChat API",
    version="2",
    description=(
        "The JSON API of TeamChat, for the page, scripts and bots alike. Every error is "
        '`{"error": code, "detail": words}` with the codes of docs/protocol.md. '
        "Authenticate with the session cookie (writes also send X-CSRFToken) or with "
        "`Authorization: Bearer <token>`. See docs/api.md."
    ),
    openapi_url="schema/",
    docs_url="docs/",
    docs=Docs(),
    urls_namespace="api",
)
api.body_models = []


@dataclass
class Route:
    """A path, its view, and the methods it documents."""

    path: str
    view: Callable[..., HttpResponse]
    methods: dict[str, Op]
    params: Mapping[str, type] = field(default_factory=dict)


ROUTES: list[Route] = []


def _handler(view: Callable[..., HttpResponse], params: Mapping[str, type], name: str) -> Callable:
    def handler(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return view(request, **kwargs)

    # Ninja reads the path parameters (and their types) from the signature.
    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=t)
            for p, t in params.items()
        ]
    )
    handler.__name__ = name
    return handler


# operation id -> the media type of its 200 answer, for answers that are files.
FILE_ANSWERS: dict[str, str] = {}


def _extra(op: Op) -> DictStrAny:
    extra: DictStrAny = {}
    if op.security is not None:
        extra["security"] = op.security or [SESSION_READ, BEARER]
    else:
        extra["security"] = [{}, SESSION_READ, BEARER]
    if op.query:
        extra["parameters"] = list(op.query)
    if op.body is not None:
        api.body_models.append(op.body)
        kind = "multipart/form-data" if op.multipart else "application/json"
        ref = {"$ref": REF.format(model=op.body.__name__)}
        extra["requestBody"] = {"required": True, "content": {kind: {"schema": ref}}}
    return extra


def route(
    path: str,
    view: Callable[..., HttpResponse],
    params: Mapping[str, type] | None = None,
    **methods: Op,
) -> None:
    """Declare `path` (under /api/, ninja's `{converter:name}` syntax) and its methods."""
    params = params or {}
    ops = {m.upper(): op for m, op in methods.items()}
    ROUTES.append(Route(path, view, ops, params))
    for method, op in ops.items():
        words = re.sub(r"\{(?:\w+:)?(\w+)\}", r"\1", path).strip("/").replace("/", "_")
        name = f"{method.lower()}_{words}"
        responses = dict(op.responses)
        # Anyone may be refused: not signed in, or held by the access gate
        # (an unverified address, two-factor required) with 403.
        for status in (401, 403, 405, *op.errors):
            responses.setdefault(status, _error_response(ERRORS[status]))
        if method not in ("GET", "HEAD"):
            responses.setdefault(429, _error_response(ERRORS[429]))
        if op.body is not None:
            responses.setdefault(400, _error_response(ERRORS[400]))
        if params:
            responses.setdefault(404, _error_response(ERRORS[404]))
        if op.file:
            FILE_ANSWERS[name] = op.file
        api.api_operation(
            [method],
            path,
            response=_documented(responses),
            operation_id=name,
            summary=op.summary,
            description=op.description or None,
            tags=[path.strip("/").split("/")[0]],
            openapi_extra=_extra(op),
            url_name=f"api-schema-{name}",
        )(_handler(view, params, name))


def _documented(responses: dict[int, Any]) -> dict[int, Any]:
    # Ninja takes a (Schema, description) pair only through its own types:
    # keep the class, and the descriptions come from the classes' docstrings.
    return {status: (r[0] if isinstance(r, tuple) else r) for status, r in responses.items()}


SLUG = {"slug": str}
ROOM = "/rooms/{slug:slug}"
W = [SESSION_WRITE, BEARER]

route(
    "/session/",
    accounts_views.session_status,
    get=Op(
        "Who this session is signed in as",
        {200: s.SessionOut},
        security=None,
        description="401 `not_authenticated`, or `account_deactivated` when an admin "
        "deactivated the account (signing in again will not help).",
    ),
)
route(
    "/people/",
    accounts_views.people,
    get=Op("Everyone's public profile", {200: s.PeopleList}),
)
route(
    "/profile/",
    accounts_views.profile,
    get=Op("Your own profile", {200: s.ProfileOut}),
    patch=Op("Change your profile", {200: s.ProfileOut}, body=s.ProfileIn, security=W),
)
route(
    "/profile/avatar/",
    accounts_views.profile_avatar,
    post=Op(
        "Set your picture (multipart field `file`)",
        {200: s.ProfileOut},
        errors=(400, 413),
        body=s.FileIn,
        multipart=True,
        security=W,
    ),
    delete=Op("Remove your picture", {200: s.ProfileOut}, security=W),
)
route(
    "/rooms/",
    chat_api.rooms,
    get=Op(
        "Your rooms with their counts, or every public channel",
        {200: s.RoomList},
        query=[query("browse", {"type": "string"}, "Any value: every public channel instead.")],
    ),
    post=Op("Create a room", {201: s.RoomOut}, body=s.RoomCreateIn, security=W),
)
route(
    ROOM + "/",
    chat_api.room_detail,
    SLUG,
    patch=Op(
        "Rename, change the topic, archive or unarchive (room admins)",
        {200: s.RoomOut},
        body=s.RoomUpdateIn,
        security=W,
    ),
)
route(
    ROOM + "/messages/",
    chat_api.room_messages,
    SLUG,
    get=Op(
        "History: catch-up (`after`) or scrollback (`before`), oldest first",
        {200: s.MessageList},
        errors=(400,),
        query=[
            query("after", INT, "Messages after this id (catch-up)."),
            query("before", INT, "Messages before this id (scrollback)."),
            query("limit", {"type": "integer", "minimum": 1}, "How many (capped)."),
            query("thread", INT, "Only this root's replies; the answer adds root and state."),
            query("in_room", {"enum": ["0", "1"]}, "1: only what the room itself shows."),
        ],
    ),
    post=Op(
        "Send a message (as the socket's `send`)",
        {201: s.MessageOut, 200: s.MessageOut},
        errors=(413,),
        body=s.MessageSendIn,
        security=W,
        description="201 with the stored message; a retry with the same nonce answers 200 "
        "with the message stored the first time.",
    ),
)
route(
    ROOM + "/join/",
    chat_api.room_join,
    SLUG,
    post=Op("Join a public channel", {200: s.RoomOut}, security=W),
)
route(
    ROOM + "/leave/",
    chat_api.room_leave,
    SLUG,
    post=Op("Leave a room", {200: s.RoomLeft}, errors=(400,), security=W),
)
route(
    ROOM + "/read/",
    chat_api.room_read,
    SLUG,
    post=Op("Move your read marker", {200: s.ReadMarker}, body=s.ReadIn, security=W),
)
route(
    ROOM + "/members/",
    chat_api.room_members,
    SLUG,
    get=Op("The members and their presence", {200: s.MemberList}),
    post=Op("Invite someone", {201: s.Invited}, body=s.InviteIn, security=W),
)
route(
    ROOM + "/members/{str:username}/",
    chat_api.room_member,
    {"slug": str, "username": str},
    delete=Op("Remove a member (room admins)", {204: None}, errors=(400,), security=W),
)
route(
    ROOM + "/notify/",
    notify_views.room_notify,
    SLUG,
    put=Op(
        "How much of this room may interrupt you", {200: s.NotifyOut}, body=s.NotifyIn, security=W
    ),
)
route(
    "/groups/",
    notify_views.groups,
    get=Op("Every user group", {200: s.GroupList}),
    post=Op("Define a group (admins)", {201: s.GroupOut}, body=s.GroupIn, security=W),
)
route(
    "/groups/{str:handle}/",
    notify_views.group_detail,
    {"handle": str},
    patch=Op("Change a group (admins)", {200: s.GroupOut}, body=s.GroupUpdateIn, security=W),
    delete=Op("Remove a group (admins)", {204: None}, security=W),
)
route(
    "/dms/",
    chat_api.dms,
    post=Op(
        "Open (or find) a direct conversation",
        {200: s.RoomOut},
        errors=(404,),
        body=s.DmIn,
        security=W,
    ),
)
route(
    "/threads/",
    threads_api.threads,
    get=Op(
        "The threads you follow, unread first",
        {200: s.ThreadList},
        errors=(400,),
        query=[
            query("limit", {"type": "integer", "minimum": 1}, "How many."),
            query("cursor", {"type": "string"}, "The previous page's `next`."),
        ],
    ),
)
route(
    "/threads/{int:root_id}/follow/",
    threads_api.thread_follow,
    {"root_id": int},
    post=Op("Follow a thread", {200: s.ThreadState}, security=W),
    delete=Op("Stop following a thread", {200: s.ThreadState}, security=W),
)
route(
    "/threads/{int:root_id}/read/",
    threads_api.thread_read,
    {"root_id": int},
    post=Op("Move a thread's read marker", {200: s.ThreadState}, body=s.ReadIn, security=W),
)
route(
    "/drafts/",
    drafts_views.drafts_view,
    get=Op("Your drafts with text, newest first", {200: s.DraftList}),
    put=Op(
        "Store a draft",
        {200: s.DraftOut, 409: s.DraftConflict},
        errors=(404,),
        body=s.DraftIn,
        security=W,
        description="409 `conflict` carries the stored draft when `version` is behind it.",
    ),
)
route(
    "/uploads/",
    uploads_views.upload,
    post=Op(
        "Upload a file (multipart field `file`), to attach to a message",
        {201: s.UploadOut},
        errors=(409, 413),
        body=s.FileIn,
        multipart=True,
        query=[
            header(
                "X-Upload-Key",
                {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "Your name for this upload, to cancel it with "
                "DELETE /api/uploads/pending/{key}/ before its answer comes.",
            )
        ],
        security=W,
        description="409 `conflict`: the upload's X-Upload-Key was cancelled; nothing is kept.",
    ),
)
route(
    "/uploads/{int:upload_id}/",
    uploads_views.upload_detail,
    {"upload_id": int},
    delete=Op("Take back an unsent file (or any, for admins)", {204: None}, security=W),
)
route(
    "/uploads/pending/{str:key}/",
    uploads_views.upload_pending,
    {"key": str},
    delete=Op(
        "Cancel the upload you sent with X-Upload-Key `key`, arrived or not",
        {204: None},
        errors=(400,),
        security=W,
        description="Deletes your unsent upload with that key, and refuses it (409) if it "
        "arrives later. Always 204, again or for a key never used; a file a message "
        "carries stays.",
    ),
)
route(
    "/users/",
    chat_api.users,
    get=Op(
        "Active users by username prefix",
        {200: s.UserList},
        errors=(400, 404),
        query=[
            query("q", {"type": "string"}, "The prefix."),
            query("room", {"type": "string"}, "Only members of this room."),
        ],
    ),
)
route(
    "/emoji/",
    chat_api.emoji,
    get=Op(
        "The emoji catalog (gzip when accepted)",
        {200: s.EmojiCatalog},
        description="The same for everyone; cached a day by the browser.",
    ),
)
route(
    "/messages/{int:message_id}/",
    chat_api.message_detail,
    {"message_id": int},
    patch=Op("Edit your message", {200: s.MessageOut}, body=s.MessageEditIn, security=W),
    delete=Op("Delete a message (yours, or any for room admins)", {204: None}, security=W),
)
route(
    "/messages/{int:message_id}/reactions/",
    chat_api.message_reactions,
    {"message_id": int},
    post=Op("Add or take back your reaction", {200: s.Reaction}, body=s.ReactionIn, security=W),
)
route(
    "/search/",
    search_views.search_api,
    get=Op(
        "Search messages you may read, newest first",
        {200: s.SearchResults, 400: s.SearchError},
        errors=(404, 429),
        query=[
            query("q", {"type": "string"}, 'Words, "phrases", from:, in:, has:, before:, after:.'),
            query("room", {"type": "string"}, "Only this room."),
            query("cursor", {"type": "string"}, "The previous page's `next`."),
            query("limit", {"type": "integer", "minimum": 1}, "How many (capped)."),
        ],
    ),
)
route(
    "/tokens/",
    integrations_api.tokens_view,
    get=Op("Your tokens (never their secrets)", {200: s.TokenList}),
    post=Op(
        "Create a token (signed-in session only)",
        {201: s.TokenCreated},
        body=s.TokenIn,
        security=[SESSION_WRITE],
    ),
)
route(
    "/tokens/{int:token_id}/",
    integrations_api.token_detail,
    {"token_id": int},
    delete=Op(
        "Revoke a token: its sockets close with 4401 (signed-in session only)",
        {204: None},
        security=[SESSION_WRITE],
    ),
)

BOT = "/bots/{str:username}"
BOT_PARAM = {"username": str}
ONLY_SESSION = [SESSION_WRITE]

route(
    "/bots/",
    bots_api.bots_view,
    get=Op("The bots you manage (every bot, for admins)", {200: s.BotList}),
    post=Op(
        "Create a bot (signed-in session only)",
        {201: s.BotOut},
        body=s.BotIn,
        security=ONLY_SESSION,
    ),
)
route(
    BOT + "/",
    bots_api.bot_detail,
    BOT_PARAM,
    get=Op("A bot you manage, with its webhooks", {200: s.BotDetail}),
    patch=Op(
        "Rename a bot, or give it another owner (admins)",
        {200: s.BotDetail},
        body=s.BotUpdateIn,
        security=ONLY_SESSION,
    ),
    delete=Op("Deactivate a bot", {204: None}, security=ONLY_SESSION),
)
route(
    BOT + "/tokens/",
    bots_api.bot_tokens,
    BOT_PARAM,
    get=Op("A bot's tokens (never their secrets)", {200: s.TokenList}),
    post=Op(
        "Create a token for a bot, shown once",
        {201: s.TokenCreated},
        body=s.TokenIn,
        security=ONLY_SESSION,
    ),
)
route(
    BOT + "/tokens/{int:token_id}/",
    bots_api.bot_token,
    {**BOT_PARAM, "token_id": int},
    delete=Op("Revoke a bot's token", {204: None}, security=ONLY_SESSION),
)
route(
    BOT + "/rooms/",
    bots_api.bot_rooms,
    BOT_PARAM,
    post=Op("Add a bot to a room you are in", {200: s.BotRoomAdded}, body=s.BotRoomIn, security=W),
)
route(
    BOT + "/webhooks/",
    bots_api.bot_webhooks,
    BOT_PARAM,
    get=Op("A bot's incoming webhooks", {200: s.WebhookList}),
    post=Op(
        "Create an incoming webhook (its URL shown once)",
        {201: s.WebhookOut},
        body=s.WebhookIn,
        security=ONLY_SESSION,
    ),
)
route(
    BOT + "/webhooks/{int:hook_id}/",
    bots_api.bot_webhook,
    {**BOT_PARAM, "hook_id": int},
    delete=Op("Delete an incoming webhook", {204: None}, security=ONLY_SESSION),
)
route(
    BOT + "/webhooks/{int:hook_id}/rotate/",
    bots_api.bot_webhook_rotate,
    {**BOT_PARAM, "hook_id": int},
    post=Op(
        "A new secret URL; the old one stops working at once",
        {200: s.WebhookOut},
        security=ONLY_SESSION,
    ),
)
route(
    ROOM + "/commands/",
    commands_api.room_command,
    SLUG,
    post=Op(
        "Run a slash command in a room (as typed in its box)",
        {200: s.CommandResult},
        errors=(413, 503),
        body=s.CommandIn,
        security=W,
    ),
)
route(
    "/commands/",
    commands_api.commands_view,
    get=Op("Every slash command: built-in, then bots'", {200: s.CommandList}),
    post=Op(
        "Register a bot's command (its owner, or the bot with its token)",
        {201: s.CommandOut},
        errors=(404, 409),
        body=s.CommandRegisterIn,
        security=W,
    ),
)
route(
    "/commands/{str:name}/",
    commands_api.command_detail,
    {"name": str},
    delete=Op("Remove a bot's command", {204: None}, security=W),
)

route(
    "/exports/",
    export_views.exports,
    get=Op("Your exports, newest first", {200: s.ExportList}),
    post=Op(
        'Ask for an export: "org" (admins) or "user" (your own data)',
        {202: s.ExportOut},
        body=s.ExportIn,
        security=W,
    ),
)
route(
    "/exports/{int:job_id}/",
    export_views.export_detail,
    {"job_id": int},
    get=Op("One of your exports: its state and progress", {200: s.ExportOut}),
)
route(
    "/exports/{int:job_id}/download/",
    export_views.export_download,
    {"job_id": int},
    get=Op(
        "Download your export (a zip; anyone else's is 404)", {200: None}, file="application/zip"
    ),
)
HOOK = "/webhooks/outgoing/{int:webhook_id}"
HOOK_PARAM = {"webhook_id": int}
route(
    "/webhooks/outgoing/",
    outgoing_api.webhooks,
    get=Op("The outgoing webhooks you manage", {200: s.OutgoingWebhookList}),
    post=Op(
        "Set up a bot's outgoing webhook",
        {201: s.OutgoingWebhookOut},
        errors=(404, 409),
        body=s.OutgoingWebhookIn,
        security=W,
    ),
)
route(
    HOOK + "/",
    outgoing_api.webhook_detail,
    HOOK_PARAM,
    get=Op("An outgoing webhook, with its signing secret", {200: s.OutgoingWebhookOut}),
    patch=Op(
        "Change its URL, trigger words, rooms or state",
        {200: s.OutgoingWebhookOut},
        body=s.OutgoingWebhookUpdateIn,
        security=W,
    ),
    delete=Op("Remove it and its deliveries", {204: None}, security=W),
)
route(
    HOOK + "/rotate/",
    outgoing_api.webhook_rotate,
    HOOK_PARAM,
    post=Op("A new signing secret", {200: s.OutgoingWebhookOut}, security=W),
)
route(
    HOOK + "/deliveries/",
    outgoing_api.webhook_deliveries,
    HOOK_PARAM,
    get=Op("Its last 50 deliveries, newest first", {200: s.DeliveryList}),
)
