"""Repository-root conftest: puts the project root on sys.path so tests import the top-level packages."""
