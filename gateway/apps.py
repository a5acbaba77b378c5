from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Model gateway (chat completions, embeddings, models, moderations)"
