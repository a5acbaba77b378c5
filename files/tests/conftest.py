from files.tests.fixtures import storage_dir  # noqa: F401 - a fixture
