"""Generated coat-pattern animals for the tests (see reid_hub.synthetic)."""
from reid_hub.synthetic import coat, photo

__all__ = ["coat", "photo"]
