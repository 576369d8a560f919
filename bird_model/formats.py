"""File formats the product accepts, shared by dataset ingestion and source discovery."""

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
