"""Exports over HTTP: request, follow, download (only by who asked), and the settings page."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedRequest
from chat.api import allow, api_view, json_body
from chat.errors import ChatError, Code
from chat.events import format_time
from chat.models import uploads_storage

from ..models import ExportJob
from . import services


def job_data(job: ExportJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "scope": job.scope,
        "status": job.status,
        "progress": job.progress,
        "counts": job.counts,
        "size": job.size,
        "error": job.error,
        "created": format_time(job.created),
        "finished": format_time(job.finished) if job.finished else None,
        "download": f"/api/exports/{job.pk}/download/"
        if job.status == ExportJob.Status.DONE
        else None,
    }


@allow("GET", "POST")
@api_view
def exports(request: AuthenticatedRequest) -> JsonResponse:
    """GET: one's exports. POST {"scope": "org"|"user"}: a new one (202 while it is made)."""
    if request.method == "POST":
        job = services.export_request(
            actor=request.user, scope=json_body(request).get("scope"), request=request
        )
        return JsonResponse({"export": job_data(job)}, status=202)
    jobs = ExportJob.objects.filter(requested_by=request.user)[:20]
    return JsonResponse({"exports": [job_data(j) for j in jobs]})


@allow("GET")
@api_view
def export_detail(request: AuthenticatedRequest, job_id: int) -> JsonResponse:
    return JsonResponse({"export": job_data(services.export_for(request.user, job_id))})


@allow("GET")
@api_view
def export_download(request: AuthenticatedRequest, job_id: int) -> HttpResponse:
    """The archive, to the person who asked for it only (anyone else: 404)."""
    job = services.export_for(request.user, job_id)
    if job.status != ExportJob.Status.DONE or not job.file:
        raise ChatError(Code.NOT_FOUND, "This export is not ready.")
    services.export_downloaded(actor=request.user, job=job, request=request)
    name = job.file.rsplit("/", 1)[-1]
    response = FileResponse(
        uploads_storage().open(job.file, "rb"),
        as_attachment=True,
        filename=name,
        content_type="application/zip",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response  # type: ignore[return-value]


@require_http_methods(["GET", "POST"])
@login_required
def export_page(request: AuthenticatedRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            services.export_request(
                actor=request.user, scope=request.POST.get("scope"), request=request
            )
            return redirect("settings-export")
        except ChatError as exc:
            error = exc.detail
    jobs = ExportJob.objects.filter(requested_by=request.user)[:10]
    return render(
        request,
        "integrations/export.html",
        {
            "jobs": jobs,
            "may_export_org": request.user.is_chat_admin,
            "error": error,
            "back_url": "/",
        },
        status=400 if error else 200,
    )
