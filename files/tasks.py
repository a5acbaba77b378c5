from celery import shared_task


@shared_task(ignore_result=True)
def file_purge_expired() -> int:
    from files import services

    return services.file_purge_expired()
