"""Details on demand with real processes: national <- province <- enterprise, from the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx

from cli.cli_support import auth, eventually, http_port, iinode, init, serving, tune


def test_monitor_event_fetches_a_detail_held_two_levels_down(tmp_path: Path) -> None:
    top, prov, ent = tmp_path / "top", tmp_path / "prov", tmp_path / "ent"
    pt, pp, pe = http_port(), http_port(), http_port()
    top_url, prov_url, ent_url = (f"http://127.0.0.1:{p}" for p in (pt, pp, pe))
    init(top, "top", "88", pt, "top-pw")
    init(prov, "secondary", "88.7", pp, "prov-pw", "--parent", top_url,
         "--report-secret", "prov-report")  # fmt: skip
    init(ent, "enterprise", "88.7.1", pe, "ent-pw", "--parent", prov_url,
         "--report-secret", "ent-report")  # fmt: skip
    for data in (prov, ent):
        tune(data, heartbeat_interval=0.2, notice_interval=0.2)
    toml = ent / "node.toml"
    toml.write_text(toml.read_text().replace("telemetry = true", "telemetry = false"))

    with serving(top, pt), serving(prov, pp), serving(ent, pe):
        iinode("prefix", "delegate", "88.7", "--to", prov_url, "--node", top_url, "--secret",
               "top-pw", "--child-secret", "prov-report", "--province", "JS")  # fmt: skip
        iinode("prefix", "delegate", "88.7.1", "--to", ent_url, "--node", prov_url,
               "--secret", "prov-pw", "--child-secret", "ent-report",
               "--province", "JS", "--industry", "automobiles")  # fmt: skip
        bad = iinode("prefix", "delegate", "88.7.2", "--to", ent_url, "--node", prov_url,
                     "--secret", "prov-pw", "--province", "J S", check=False)  # fmt: skip
        assert bad.returncode == 1
        assert "province 'J S'" in bad.stderr

        # a wrong password at the enterprise: a security event, its STIX detail kept at 88.7
        r = httpx.put(f"{ent_url}/api/handles/88.7.1/X", json={"values": []},
                      auth=auth("88.7.1", "wrong"))  # fmt: skip
        assert r.status_code == 401

        def summary() -> dict[str, object] | None:
            r = httpx.get(f"{top_url}/monitoring/events", params={"kind": "security"},
                          auth=auth("88", "top-pw"))  # fmt: skip
            assert r.status_code == 200, r.text
            return next((e for e in r.json()["events"] if e["origin"] == "88.7.1"), None)

        found = eventually(summary, limit=30)
        assert isinstance(found, dict), "the enterprise's security event never reached 88"
        assert found["detail_at"] == "88.7"
        assert "detail" not in found
        # heartbeats arrive every 0.2 s from two nodes: the 20 latest of all kinds may be
        # heartbeats only by the time the CLI has started on a loaded machine
        listed = iinode("monitor", "recent", "--kind", "security", "--node", top_url,
                        "--secret", "top-pw").stdout  # fmt: skip
        assert str(found["id"]) in listed
        assert "at 88.7" in listed

        out = iinode("monitor", "event", "88.7.1", str(found["id"]), "--node", top_url,
                     "--secret", "top-pw", "--wait", "20").stdout  # fmt: skip
        assert '"type": "bundle"' in out, out
        assert "observed-data" in out
        assert "detail requested" not in out
        # the parent's records label the nodes, whatever they declared
        nodes = httpx.get(f"{top_url}/monitoring/nodes", auth=auth("88", "top-pw")).json()
        assert {n["origin"]: n["province"] for n in nodes["nodes"]}["88.7"] == "JS"
