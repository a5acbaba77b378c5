from assistants_project.api.routers import OpenAIRouter
from retrieval.views import FileBatchViewSet, VectorStoreFileViewSet, VectorStoreViewSet

router = OpenAIRouter()
router.register("vector_stores", VectorStoreViewSet, basename="vector-store")
router.register(r"vector_stores/(?P<vector_store_id>[^/.]+)/files", VectorStoreFileViewSet,
                basename="vector-store-file")
router.register(r"vector_stores/(?P<vector_store_id>[^/.]+)/file_batches", FileBatchViewSet,
                basename="vector-store-file-batch")
urlpatterns = router.urls
