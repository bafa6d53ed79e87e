"""Private session galleries: separate per session, size-limited, expiring."""
import pytest

from reid_hub import create_model
from reid_hub.app.sessions import SessionGalleries
from reid_hub.errors import ConfigError, TooLargeError

from coats import coat, photo


def test_sessions_are_separate_limited_and_expire(tmp_path):
    model = create_model("tiny-test")
    now = [1000.0]  # an injected clock: expiry does not depend on how long enrolling takes here
    s = SessionGalleries(model, root=tmp_path, max_images=2, ttl_s=60, max_sessions=2, clock=lambda: now[0])
    a, b = s.get("alice"), s.get("bob")
    assert a.folder != b.folder and "alice" not in str(a.folder)  # folders are hashes, never visitor text
    iid = a.add_individual("rex")
    img = photo(coat(1), 0)
    a.enroll(iid, model.embed([img]), images=[img])
    assert len(s.get("alice")) == 1 and len(s.get("bob")) == 0
    s.check_room(a)
    a.enroll(iid, model.embed([img]), images=[img])
    with pytest.raises(TooLargeError):
        s.check_room(a)
    s.get("carol")  # a third session evicts the oldest
    assert len(s) == 2
    now[0] += 59
    assert s.expire() == 0 and len(s) == 2  # idle for less than the TTL: kept
    now[0] += 2
    assert s.expire() == 2 and len(s) == 0
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError):
        s.get("")
