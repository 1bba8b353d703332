"""Upload storage and serving modes as a process started with a given environment sees them."""

from tests.test_production_settings import PRODUCTION, run, settings_in


def test_uploads_are_kept_in_a_private_local_directory_by_default(tmp_path):
    got = settings_in(["STORAGES", "UPLOADS_SERVE"], UPLOADS_DIR=str(tmp_path), **PRODUCTION)
    storage = got["STORAGES"]["uploads"]
    assert storage["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert storage["OPTIONS"] == {"location": str(tmp_path), "base_url": None}
    assert got["UPLOADS_SERVE"] == "django"


def test_an_s3_bucket_in_the_environment_switches_uploads_to_private_s3_storage():
    got = settings_in(
        ["STORAGES"],
        UPLOADS_S3_BUCKET="team-files",
        UPLOADS_S3_ENDPOINT_URL="https://minio.example.com",
        UPLOADS_S3_REGION="eu-central-1",
        UPLOADS_S3_ACCESS_KEY_ID="key-id",
        UPLOADS_S3_SECRET_ACCESS_KEY="secret",
        **PRODUCTION,
    )
    storage = got["STORAGES"]["uploads"]
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    options = storage["OPTIONS"]
    assert options["bucket_name"] == "team-files"
    assert options["endpoint_url"] == "https://minio.example.com"
    assert options["region_name"] == "eu-central-1"
    assert (options["access_key"], options["secret_key"]) == ("key-id", "secret")
    assert options["default_acl"] == "private"
    # Downloads stream through a file that spills to disk, not one held in memory.
    assert 0 < options["max_memory_size"] <= 8 * 1024 * 1024
    # Static files are not touched.
    assert got["STORAGES"]["staticfiles"]["BACKEND"] == "teamchat.storage.StaticFilesStorage"


def test_the_s3_storage_is_built_from_those_settings():
    script = (
        "import django; django.setup(); from chat.models import uploads_storage; "
        "s = uploads_storage(); print(type(s).__name__, s.bucket_name, s.default_acl)"
    )
    result = run(["-c", script], UPLOADS_S3_BUCKET="team-files", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["S3Storage", "team-files", "private"]


def test_proxy_modes_are_checked_at_startup():
    got = settings_in(
        ["UPLOADS_SERVE", "UPLOADS_INTERNAL_PREFIX"], UPLOADS_SERVE="x-accel-redirect", **PRODUCTION
    )
    assert got == {"UPLOADS_SERVE": "x-accel-redirect", "UPLOADS_INTERNAL_PREFIX": "/_uploads/"}
    script = ["-c", "import django; django.setup()"]
    wrong = run(script, UPLOADS_SERVE="nginx", **PRODUCTION)
    assert wrong.returncode != 0 and "UPLOADS_SERVE must be" in wrong.stderr
    with_s3 = run(script, UPLOADS_SERVE="x-sendfile", UPLOADS_S3_BUCKET="team-files", **PRODUCTION)
    assert with_s3.returncode != 0 and "local UPLOADS_DIR" in with_s3.stderr
