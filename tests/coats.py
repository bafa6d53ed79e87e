"""Generated coat-pattern animals for the tests (see reid_hub.data.synthetic)."""
from reid_hub.data.synthetic import coat, photo

__all__ = ["coat", "photo"]
