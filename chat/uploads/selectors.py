"""Reading uploads: the one lookup every download goes through."""

from typing import Any

from chat import access
from chat.errors import NoSuchUpload
from chat.models import Upload


def upload_for_download(*, user: Any, upload_id: int, key: str) -> Upload:
    """The upload at this address if `user` may download it; NoSuchUpload otherwise.

    Anonymous users, a wrong key, a file the user may not see, a deleted
    message's file and a file that never existed are all the same refusal.
    """
    if not user.is_authenticated:
        raise NoSuchUpload()
    upload = (
        Upload.objects.filter(access.downloadable_by(user.pk), pk=upload_id, key=key)
        .only("id", "key", "name", "size", "content_type", "file", "width", "thumbnail")
        .first()
    )
    if upload is None:
        raise NoSuchUpload()
    return upload
