from django.urls import path

from gateway import views

urlpatterns = [
    path("chat/completions", views.chat_completions),
    path("chat/completions/<str:completion_id>", views.stored_completion),
    path("chat/completions/<str:completion_id>/<str:rest>", views.stored_completion),
    path("embeddings", views.embeddings),
    path("models", views.model_list),
    path("models/<path:model>", views.model_retrieve),
    path("moderations", views.moderations),
]
