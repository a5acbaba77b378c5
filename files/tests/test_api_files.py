"""Files over HTTP: multipart upload (streamed, size-limited, nothing half-written), list, retrieve, content,
delete, expiry and the purge task, tenancy."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from files import services, tasks
from files.models import File
from files.tests.fixtures import make_file, stored
from tests.schema import assert_list_schema, assert_schema
from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


def assert_file_schema(body: dict) -> None:
    """OpenAI's API answers ``expires_at``/``status_details`` as null when unset (the SDK types them Optional);
    the spec types them as plain integer/string but does not require them, so validate without the nulls."""
    assert_schema({k: v for k, v in body.items() if v is not None}, "OpenAIFile")


def upload(api, content=b"hello world", name="notes.txt", purpose="assistants", content_type="text/plain",
           **extra):
    body = {"file": SimpleUploadedFile(name, content, content_type), **extra}
    if purpose is not None:
        body["purpose"] = purpose
    return api.post("/v1/files", body, format="multipart")


def uploaded(api, **kwargs) -> dict:
    response = upload(api, **kwargs)
    assert response.status_code == 200, response.content
    if response.json()["purpose"] != "evals":  # the spec's OpenAIFile enum predates "evals"
        assert_file_schema(response.json())
    return response.json()


def download(api, file_id, **headers):
    response = api.get(f"/v1/files/{file_id}/content", **headers)
    return response, b"".join(response.streaming_content) if response.status_code == 200 else None


@pytest.fixture
def nothing_left(storage_dir, tmp_path):
    """After the test: no bytes in storage, no spooled upload in the temp dir, no rows."""
    yield
    assert stored(storage_dir) == []
    assert stored(tmp_path / "uploads") == []
    assert File.objects.count() == 0


def test_upload_shape_storage_and_download(api, project, storage_dir):
    content = bytes(range(256)) * 40
    body = uploaded(api, content=content, name="report.bin", content_type="application/x-custom")
    assert body["id"].startswith("file-") and body["object"] == "file"
    assert body["bytes"] == len(content) and body["filename"] == "report.bin"
    assert body["purpose"] == "assistants" and body["status"] == "processed"
    assert body["expires_at"] is None and body["status_details"] is None
    assert isinstance(body["created_at"], int)
    # Stored under the project and file ids, never the client's name.
    assert stored(storage_dir) == [storage_dir / project.public_id / body["id"]]
    assert (storage_dir / project.public_id / body["id"]).read_bytes() == content

    assert api.get(f"/v1/files/{body['id']}").json() == body
    response, data = download(api, body["id"])
    assert response.status_code == 200 and data == content
    assert response["Content-Type"] == "application/x-custom"
    assert response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"] == 'attachment; filename="report.bin"'


def test_content_type_is_guessed_for_generic_uploads(api):
    body = uploaded(api, content=b'{"a": 1}', name="data.json", content_type="application/octet-stream")
    response, data = download(api, body["id"])
    assert response["Content-Type"] == "application/json" and data == b'{"a": 1}'
    body = uploaded(api, content=b"\x00\x01", name="blob", content_type="application/octet-stream")
    assert download(api, body["id"])[0]["Content-Type"] == "application/octet-stream"


def test_download_with_the_sdks_accept_header_and_a_unicode_name(api):
    body = uploaded(api, content=b"bonjour", name="résumé été.txt")
    response, data = download(api, body["id"], HTTP_ACCEPT="application/binary")
    assert response.status_code == 200 and data == b"bonjour"
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%C3%A9t%C3%A9.txt"
    assert body["filename"] == "résumé été.txt"


@pytest.mark.parametrize("purpose", ["assistants", "vision", "batch", "fine-tune", "user_data", "evals"])
def test_every_upload_purpose(api, purpose):
    body = uploaded(api, purpose=purpose)
    assert body["purpose"] == purpose
    if purpose == "batch":  # OpenAI: batch files expire after 30 days unless told otherwise
        assert body["expires_at"] == body["created_at"] + 30 * 24 * 3600
    else:
        assert body["expires_at"] is None


def test_expires_after(api):
    body = uploaded(api, **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"})
    assert body["expires_at"] == body["created_at"] + 3600
    body = uploaded(api, purpose="batch", **{"expires_after[anchor]": "created_at",
                                             "expires_after[seconds]": "2592000"})
    assert body["expires_at"] == body["created_at"] + 2_592_000


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"expires_after[anchor]": "last_active_at", "expires_after[seconds]": "3600"}, "expires_after.anchor"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "3599"}, "expires_after.seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "2592001"}, "expires_after.seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "soon"}, "expires_after.seconds"),
        ({"expires_after[anchor]": "created_at"}, "expires_after.seconds"),
        ({"expires_after[seconds]": "3600"}, "expires_after.anchor"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600", "expires_after[days]": "1"},
         "expires_after.days"),
        ({"expires_after": "tomorrow"}, "expires_after"),
        ({"filename": "other.txt"}, "filename"),
    ],
)
def test_invalid_fields_name_param_and_store_nothing(api, nothing_left, extra, param):
    assert_error(upload(api, **extra), 400, param=param)


def test_missing_purpose(api, nothing_left):
    error = assert_error(upload(api, purpose=None), 400, param="purpose")
    assert "required" in error["message"]


def test_unknown_purpose(api, nothing_left):
    error = assert_error(upload(api, purpose="assistants_output"), 400, param="purpose")
    assert "'assistants_output'" in error["message"]


def test_missing_file(api, nothing_left):
    assert_error(api.post("/v1/files", {"purpose": "assistants"}, format="multipart"), 400, param="file")


def test_file_sent_as_a_plain_field(api, nothing_left):
    response = api.post("/v1/files", {"purpose": "assistants", "file": "just text"}, format="multipart")
    assert_error(response, 400, param="file", contains="expected a file upload")


def test_empty_file(api, nothing_left):
    assert_error(upload(api, content=b""), 400, param="file", contains="empty")


def test_two_files_in_one_request(api, nothing_left):
    body = {"file": [SimpleUploadedFile("a.txt", b"a"), SimpleUploadedFile("b.txt", b"b")], "purpose": "assistants"}
    assert_error(api.post("/v1/files", body, format="multipart"), 400, param="file")


def test_long_filenames_are_cut_to_255_keeping_the_extension(api):
    body = uploaded(api, name="x" * 600 + ".txt")  # Django's UploadedFile does the cut
    assert len(body["filename"]) == 255 and body["filename"].endswith("x.txt")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"garbage", "multipart/form-data"),  # no boundary
        (b"garbage", "multipart/form-data; boundary=xyz"),
        (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nabc',  # truncated
         "multipart/form-data; boundary=xyz"),
        (b'--xyz\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--xyz\r\n'
         b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nabc',
         "multipart/form-data; boundary=xyz"),
    ],
)
def test_malformed_multipart(api, nothing_left, body, content_type):
    assert_error(api.generic("POST", "/v1/files", body, content_type=content_type), 400, param="file")


def test_json_body_is_unsupported(api, nothing_left):
    assert_error(api.post("/v1/files", {"purpose": "assistants", "file": "x"}, format="json"), 415)


@pytest.mark.parametrize("in_memory", [True, False])
def test_oversized_file_is_413_and_leaves_nothing(api, settings, nothing_left, monkeypatch, in_memory):
    settings.FILE_UPLOAD_MAX_BYTES = 1000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10_000 if in_memory else 100  # else spooled to a temp file
    monkeypatch.setattr(services, "file_create", lambda **kw: pytest.fail("the upload should stop while parsing"))
    error = assert_error(upload(api, content=b"x" * 1001), 413, param="file")
    assert "1000 bytes" in error["message"]


def test_size_limit_is_exact(api, settings, storage_dir, tmp_path):
    settings.FILE_UPLOAD_MAX_BYTES = 1000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100
    assert uploaded(api, content=b"x" * 1000)["bytes"] == 1000
    assert_error(upload(api, content=b"x" * 1001), 413, param="file")
    assert len(stored(storage_dir)) == 1 and stored(tmp_path / "uploads") == []


def test_service_enforces_the_limit_too(project, settings, storage_dir):
    settings.FILE_UPLOAD_MAX_BYTES = 10
    with pytest.raises(Exception, match="too large"):
        make_file(project, content=b"x" * 11)
    assert stored(storage_dir) == [] and File.objects.count() == 0


def test_body_far_past_the_limit_is_refused_before_parsing(api, settings, nothing_left):
    settings.FILE_UPLOAD_MAX_BYTES = 10
    big = b"x" * (1024 * 1024 + 100)
    assert_error(upload(api, content=big), 413, param="file")


def test_a_failed_insert_removes_the_stored_bytes(project, storage_dir, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(File.objects, "create", broken)
    with pytest.raises(RuntimeError):
        make_file(project)
    assert stored(storage_dir) == []


def test_list_filters_orders_and_paginates(api):
    a = uploaded(api, name="a.txt")
    b = uploaded(api, name="b.png", purpose="vision")
    c = uploaded(api, name="c.txt")

    page = api.get("/v1/files").json()
    assert_list_schema({**page, "data": [{k: v for k, v in f.items() if v is not None} for f in page["data"]]},
                       "ListFilesResponse")
    assert [f["id"] for f in page["data"]] == [c["id"], b["id"], a["id"]] and page["has_more"] is False
    assert page["data"][0] == c
    assert [f["id"] for f in api.get("/v1/files?order=asc").json()["data"]] == [a["id"], b["id"], c["id"]]
    assert [f["id"] for f in api.get("/v1/files?purpose=assistants").json()["data"]] == [c["id"], a["id"]]
    assert [f["id"] for f in api.get("/v1/files?purpose=vision").json()["data"]] == [b["id"]]
    assert api.get("/v1/files?purpose=batch").json()["data"] == []

    page = api.get("/v1/files?limit=2").json()
    assert [f["id"] for f in page["data"]] == [c["id"], b["id"]] and page["has_more"] is True
    page = api.get(f"/v1/files?limit=2&after={page['last_id']}").json()
    assert [f["id"] for f in page["data"]] == [a["id"]] and page["has_more"] is False
    page = api.get(f"/v1/files?order=asc&limit=1&after={a['id']}").json()
    assert [f["id"] for f in page["data"]] == [b["id"]] and page["has_more"] is True
    assert len(api.get("/v1/files?limit=10000").json()["data"]) == 3


def test_list_default_limit_is_10000(api, project, storage_dir):
    for i in range(105):
        make_file(project, name=f"{i}.txt")
    page = api.get("/v1/files").json()
    assert len(page["data"]) == 105 and page["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=10001", "limit"), ("limit=many", "limit"), ("order=random", "order"),
     ("after=file-unknown", "after")],
)
def test_invalid_list_parameters(api, query, param):
    uploaded(api)
    assert_error(api.get(f"/v1/files?{query}"), 400, param=param)


def test_list_query_count_is_constant(api, project, storage_dir, django_assert_max_num_queries, monkeypatch):
    for i in range(30):
        make_file(project, name=f"{i}.txt")
    # the key cache re-reads its generation once a second: keep that (one aggregate per process per second, not per
    # request) out of the count
    monkeypatch.setattr("assistants_project.api.keycache.GENERATION_CHECK_SECONDS", 3600)
    api.get("/v1/files?limit=1")  # the key is cached and the generation read
    with django_assert_max_num_queries(3):
        assert len(api.get("/v1/files?limit=20").json()["data"]) == 20


def test_retrieve_unknown(api):
    error = assert_error(api.get("/v1/files/file-nope"), 404, param="file_id")
    assert error["message"] == "No such File object: file-nope"
    assert_error(api.get("/v1/files/file-nope/content"), 404, param="file_id")
    assert_error(api.get("/v1/files/file-nope/content", HTTP_ACCEPT="application/binary"), 404, param="file_id")


def test_files_cannot_be_modified(api):
    body = uploaded(api)
    assert_error(api.post(f"/v1/files/{body['id']}", {"purpose": "vision"}, format="multipart"), 405)


def test_delete_removes_row_and_bytes(api, storage_dir, django_capture_on_commit_callbacks):
    keep, gone = uploaded(api, name="keep.txt"), uploaded(api, name="gone.txt")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/v1/files/{gone['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": gone["id"], "object": "file", "deleted": True}
    assert_schema(response.json(), "DeleteFileResponse")
    assert [p.name for p in stored(storage_dir)] == [keep["id"]]
    assert_error(api.get(f"/v1/files/{gone['id']}"), 404, param="file_id")
    assert_error(api.get(f"/v1/files/{gone['id']}/content"), 404, param="file_id")
    assert_error(api.delete(f"/v1/files/{gone['id']}"), 404, param="file_id")
    assert [f["id"] for f in api.get("/v1/files").json()["data"]] == [keep["id"]]


def test_delete_keeps_the_bytes_if_the_transaction_rolls_back(project, storage_dir):
    file = make_file(project)
    pk = file.pk
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        services.file_delete(file=file)
        raise RuntimeError("rolled back")
    assert File.objects.filter(pk=pk).exists() and len(stored(storage_dir)) == 1


def test_expired_files_disappear_then_are_purged(api, project, storage_dir, django_capture_on_commit_callbacks):
    live = make_file(project, name="live.txt")
    expired = make_file(project, name="old.txt")
    File.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert [f["id"] for f in api.get("/v1/files").json()["data"]] == [live.public_id]
    assert_error(api.get(f"/v1/files/{expired.public_id}"), 404, param="file_id")
    assert_error(api.get(f"/v1/files/{expired.public_id}/content"), 404, param="file_id")

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.file_purge_expired() == 1
    assert list(File.objects.values_list("public_id", flat=True)) == [live.public_id]
    assert [p.name for p in stored(storage_dir)] == [live.public_id]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.file_purge_expired() == 0


def test_purge_works_in_batches(project, storage_dir, django_capture_on_commit_callbacks):
    for i in range(5):
        make_file(project, name=f"{i}.txt")
    File.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.file_purge_expired(batch_size=2) == 5
    assert File.objects.count() == 0 and stored(storage_dir) == []


def test_purge_runs_hourly_from_beat(settings):
    assert settings.CELERY_BEAT_SCHEDULE["files-purge-expired"] == {
        "task": "files.tasks.file_purge_expired", "schedule": 3600.0}
    assert tasks.file_purge_expired.name == "files.tasks.file_purge_expired"


def test_tenant_isolation(api, other_api, storage_dir):
    mine = uploaded(api, name="mine.txt")
    theirs = uploaded(other_api, content=b"secret", name="theirs.txt")
    unknown = assert_error(api.get("/v1/files/file-doesnotexist"), 404, param="file_id")
    foreign = assert_error(api.get(f"/v1/files/{theirs['id']}"), 404, param="file_id")
    assert foreign["message"] == unknown["message"].replace("file-doesnotexist", theirs["id"])
    assert_error(api.get(f"/v1/files/{theirs['id']}/content"), 404, param="file_id")
    assert_error(api.delete(f"/v1/files/{theirs['id']}"), 404, param="file_id")
    assert [f["id"] for f in api.get("/v1/files").json()["data"]] == [mine["id"]]
    assert_error(api.get(f"/v1/files?after={theirs['id']}"), 400, param="after")
    assert download(other_api, theirs["id"])[1] == b"secret"


def test_files_need_a_key(anon_api):
    assert_error(anon_api.get("/v1/files"), 401)
    assert_error(anon_api.post("/v1/files", {"purpose": "assistants"}, format="multipart"), 401)


def test_download_under_asgi_streams_chunk_by_chunk(api, project, storage_dir, monkeypatch):
    """Under ASGI the body is an async iterator (a sync one would be read whole into memory by Django)."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from files import views
    from tenancy.services import api_key_create

    monkeypatch.setattr(views, "CHUNK_BYTES", 1000)
    content = bytes(range(256)) * 20
    file = make_file(project, content=content, name="big.bin")
    headers = {"Authorization": f"Bearer {api_key_create(project=project)}", "Accept": "application/binary"}

    async def fetch():
        response = await AsyncClient().get(f"/v1/files/{file.public_id}/content", headers=headers)
        assert response.is_async
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(fetch)()
    assert response.status_code == 200 and response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"] == 'attachment; filename="big.bin"'
    assert [len(c) for c in chunks] == [1000] * 5 + [120] and b"".join(chunks) == content


def test_s3_objects_are_streamed_from_the_object_body(monkeypatch):
    """django-storages' S3File would download the whole object into an in-memory spool before the first byte;
    the download reads the boto3 object body as it arrives instead."""
    import io

    from files import storage

    class FakeS3Object:
        def get(self):
            return {"Body": io.BytesIO(b"from the bucket")}

    class FakeS3File:
        obj = FakeS3Object()

        def read(self, *args):
            raise AssertionError("S3File.read downloads the whole object first")

    monkeypatch.setattr(storage.default_storage, "open", lambda name, mode: FakeS3File())
    assert storage.open_stream("proj_x/file-x").read() == b"from the bucket"
