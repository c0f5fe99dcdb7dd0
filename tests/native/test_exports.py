import iinode.resolution


def test_resolution_public_api_is_pinned() -> None:
    assert len(iinode.resolution.__all__) == 21
    for name in iinode.resolution.__all__:
        assert getattr(iinode.resolution, name) is not None
