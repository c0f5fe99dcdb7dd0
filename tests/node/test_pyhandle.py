"""The unmodified pyhandle REST client against a running node."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pyhandle.clientcredentials import PIDClientCredentials
    from pyhandle.handleclient import PyHandleClient
    from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError

SECRET = "s3cret"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _client(node: Any, password: str = SECRET) -> PyHandleClient:
    creds = PIDClientCredentials(
        client="rest",
        handle_server_url=node.url,
        username="300:0.NA/88.118.8",
        password=password,
        HTTPS_verify=False,
    )
    return PyHandleClient("rest").instantiate_with_credentials(creds)


def test_pyhandle_full_cycle(live_node: Any) -> None:
    client = _client(live_node)
    handle = client.register_handle(
        "88.118.8/PYH-1", "http://factory.cn/press/1", checksum="abc123"
    )
    assert handle == "88.118.8/PYH-1"
    assert client.get_value_from_handle(handle, "URL") == "http://factory.cn/press/1"
    with pytest.raises(HandleAlreadyExistsException):
        client.register_handle(handle, "http://factory.cn/other")
    client.modify_handle_value(handle, URL="http://factory.cn/press/1b", LINE="A3")
    record = client.retrieve_handle_record(handle)
    assert record["URL"] == "http://factory.cn/press/1b"
    assert record["LINE"] == "A3"
    assert record["CHECKSUM"] == "abc123"
    client.delete_handle_value(handle, "LINE")
    assert "LINE" not in client.retrieve_handle_record(handle)
    client.delete_handle(handle)
    assert client.retrieve_handle_record(handle) is None


def test_pyhandle_wrong_secret_is_refused(live_node: Any) -> None:
    client = _client(live_node, password="wrong")
    with pytest.raises(HandleAuthenticationError):
        client.register_handle("88.118.8/PYH-2", "http://factory.cn/x")
