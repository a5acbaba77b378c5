from celery import shared_task


@shared_task(ignore_result=True)
def containers_expire() -> int:
    from sandbox import services

    return services.containers_expire()
