"""tools/gen_knowledge.py: the KV transports of each pinned release, read from a local git mirror (no network), and
the committed table it produced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import gen_knowledge  # noqa: E402
import knowledge_transports as transports  # noqa: E402

FACTORY = "vllm/distributed/kv_transfer/kv_connector/factory.py"

_OLD = '''
class KVConnectorFactory:
    @classmethod
    def register_connector(cls, name, module_path, class_name): ...

KVConnectorFactory.register_connector("PyNcclConnector", "vllm.kv.simple_connector", "SimpleConnector")
KVConnectorFactory.register_connector("MooncakeConnector", "vllm.kv.simple_connector", "SimpleConnector")
'''

_NEW = '''
KVConnectorFactory.register_connector(
    "NixlConnector",
    "vllm.kv.v1.nixl_connector",
    "NixlConnector",
)
KVConnectorFactory.register_connector("MooncakeConnector", "vllm.kv.v1.mooncake", "MooncakeConnector")
name = "Dynamic"
KVConnectorFactory.register_connector(name, "vllm.kv.v1.dynamic", "Dynamic")  # not a literal: not a fact we can read
mode = kv_transfer_config.get_from_extra_config("transfer_mode", "pull")
'''


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def mirror(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "vllm"
    (repo / FACTORY).parent.mkdir(parents=True)
    _git(tmp_path, "init", "-q", str(repo))
    commits = {}
    for tag, text in (("v0.8.0", _OLD), ("v0.9.0", _NEW)):
        (repo / FACTORY).write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", tag)
        _git(repo, "tag", tag)
        commits[tag] = _git(repo, "rev-parse", "HEAD")
    return repo, commits


def test_transports_from_a_mirror_become_a_versioned_table_with_sources(mirror, tmp_path):
    repo, commits = mirror
    out = tmp_path / "out"
    out.mkdir()
    assert gen_knowledge.main(["--only", "transports", "--system", "vllm", "--mirror", f"vllm={repo / '.git'}", "--out", str(out)]) == 0
    table = json.loads((out / "transports.json").read_text())["vllm"]
    assert table["repo"] == "vllm-project/vllm" and table["read_from"] == [FACTORY]
    assert table["releases"] == {"0.8.0": {"tag": "v0.8.0", "commit": commits["v0.8.0"]}, "0.9.0": {"tag": "v0.9.0", "commit": commits["v0.9.0"]}}
    names = table["names"]
    assert set(names) == {"PyNcclConnector", "MooncakeConnector", "NixlConnector"}
    assert names["PyNcclConnector"]["in"] == [["0.8.0", "0.8.0"]]
    assert names["NixlConnector"]["in"] == [["0.9.0", "0.9.0"]]
    # one name, two classes over time: each with the releases that load it
    assert names["MooncakeConnector"]["in"] == [["0.8.0", "0.9.0"]]
    assert names["MooncakeConnector"]["loads"] == [
        {"in": [["0.8.0", "0.8.0"]], "module": "vllm.kv.simple_connector", "class": "SimpleConnector"},
        {"in": [["0.9.0", "0.9.0"]], "module": "vllm.kv.v1.mooncake", "class": "MooncakeConnector"},
    ]
    assert table["patterns"]["nixl_transfer_mode"]["in"] == [["0.9.0", "0.9.0"]]
    # every other pinned release is not in the mirror: listed as missing, never invented
    assert set(table["missing"]) == set(transports.VLLM_RELEASES) - {"0.8.0", "0.9.0"}


def test_a_mirror_option_without_a_path_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        gen_knowledge.main(["--only", "transports", "--mirror", "vllm"])
    assert exc.value.code == 2 and "SYSTEM=PATH" in capsys.readouterr().err


def test_sglang_choices_are_read_in_each_of_their_shapes():
    literal = 'parser.add_argument("--disaggregation-transfer-backend", type=str, choices=["mooncake", "nixl"])'
    named = 'CHOICES = ["mooncake", "nixl", "ascend"]\nparser.add_argument("--disaggregation-transfer-backend", choices=CHOICES)'
    field = ('from x import CHOICES\nclass Disagg:\n    disaggregation_transfer_backend: A[str, Arg(help="h", choices=CHOICES)] = "mooncake"\n')
    assert list(transports.sglang_backends({"a.py": literal})) == ["mooncake", "nixl"]
    assert list(transports.sglang_backends({"a.py": named})) == ["mooncake", "nixl", "ascend"]
    assert list(transports.sglang_backends({"fields.py": field, "choices.py": "CHOICES: list[str] = ['mooncake', 'mori']"})) == ["mooncake", "mori"]
    assert transports.sglang_backends({"a.py": "x = 1"}) == {}


def test_sglang_disaggregation_mode_choices_come_from_argparse_or_the_fields_literal():
    flag = 'parser.add_argument("--disaggregation-mode", type=str, default="null", choices=["null", "prefill", "decode"])'
    field = 'class Disagg:\n    disaggregation_mode: A[Literal["null", "prefill", "decode"], "help"] = "null"\n'
    assert list(transports.sglang_choices({"a.py": flag}, "--disaggregation-mode")) == ["null", "prefill", "decode"]
    assert list(transports.sglang_choices({"fields.py": field}, "--disaggregation-mode")) == ["null", "prefill", "decode"]
    # another flag's Literal is not this flag's choices
    other = 'class D:\n    other_mode: A[Literal["x"], "h"] = "x"\n'
    assert transports.sglang_choices({"a.py": other}, "--disaggregation-mode") == {}


def test_vllm_kv_roles_are_the_literal_of_kv_role_or_the_list_post_init_checks():
    aliased = ('KVProducer = Literal["kv_producer", "kv_both"]\nKVConsumer = Literal["kv_consumer", "kv_both"]\n'
               'KVRole = Literal[KVProducer, KVConsumer]\n'
               'class KVTransferConfig:\n    kv_connector: Optional[str] = None\n    kv_role: Optional[KVRole] = None\n')
    old = ('class KVTransferConfig(BaseModel):\n    kv_role: Optional[str] = None\n'
           '    def __post_init__(self):\n        if self.kv_role not in ["kv_producer", "kv_consumer", "kv_both"]:\n'
           '            raise ValueError(f"Unsupported kv_role: {self.kv_role}")\n')
    assert sorted(transports.kv_roles({"kv_transfer.py": aliased})) == ["kv_both", "kv_consumer", "kv_producer"]
    assert list(transports.kv_roles({"config.py": old})) == ["kv_producer", "kv_consumer", "kv_both"]
    assert transports.kv_roles({"config.py": "class Other:\n    kv_role: Literal['x'] = 'x'\n"}) == {}


def test_dynamo_trtllm_mode_choices_are_evaluated_from_literals_constants_and_the_enum():
    enum = 'class Mode(Enum):\n    AGG = "both"\n    P = "prefill"\n    D = "decode"\n'
    old = 'p.add_argument("--disaggregation-mode", type=str, default="both", choices=[m.value for m in Mode])'
    new = ('AGG = "agg"\nPD = "pd"\nadd_argument(g, flag_name="--disaggregation-mode", env_var="E", default=AGG,\n'
           '    choices=[AGG, PD, *[m.value for m in Mode if m != Mode.AGG]], help="h")\n')
    assert list(transports.argparse_choices({"constants.py": enum, "utils.py": old}, "--disaggregation-mode")) == ["both", "prefill", "decode"]
    assert list(transports.argparse_choices({"constants.py": enum, "args.py": new}, "--disaggregation-mode")) == ["agg", "pd", "prefill", "decode"]
    # a filter it cannot evaluate, or an enum it does not have, gives nothing rather than a guess
    odd = 'p.add_argument("--disaggregation-mode", choices=[m.value for m in Mode if m.value.startswith("p")])'
    assert transports.argparse_choices({"constants.py": enum, "u.py": odd}, "--disaggregation-mode") == {}
    assert transports.argparse_choices({"u.py": old}, "--disaggregation-mode") == {}
    assert transports.argparse_choices({"constants.py": enum, "u.py": old}, "--disaggregation-strategy") == {}


def test_the_committed_dynamo_trtllm_tables_cover_the_releases_that_have_the_flags():
    data = json.loads((ROOT / "schemas" / "knowledge" / "generated" / "transports.json").read_text())
    mode, strategy = data["dynamo-trtllm-disagg-mode"], data["dynamo-trtllm-disagg-strategy"]
    assert mode["missing"] == [] and mode["names"]["prefill"]["in"] == [["0.4.0", "1.6.1"]]
    assert mode["names"]["agg"]["in"] == [["1.3.0", "1.6.1"]] and mode["names"]["prefill_and_decode"]["in"] == [["0.4.0", "1.3.1"]]
    assert sorted(strategy["names"]) == ["decode_first", "prefill_first"]
    assert strategy["names"]["prefill_first"]["in"] == [["0.4.0", "0.6.1"]] and "0.7.0" in strategy["missing"]


def test_the_committed_role_tables_cover_every_pinned_release():
    data = json.loads((ROOT / "schemas" / "knowledge" / "generated" / "transports.json").read_text())
    for system, first, last in (("vllm-kv-role", "0.6.5", "0.34.0"), ("sglang-disagg-mode", "0.4.6", "0.5.23")):
        assert data[system]["missing"] == [], system
        assert all(entry["in"] == [[first, last]] for entry in data[system]["names"].values()), system
    assert data["vllm-kv-role"]["patterns"]["rejects_other"]["in"] == [["0.6.5", "0.34.0"]]


def test_trtllm_backends_are_the_literal_of_the_backend_field():
    text = ('class CacheTransceiverConfig(BaseModel):\n'
            '    backend: Optional[Literal["DEFAULT", "UCX", "NIXL", "MPI"]] = Field(default=None)\n'
            'class Other:\n    backend: Literal["X"] = "X"\n')
    assert list(transports.trtllm_backends(text)) == ["DEFAULT", "UCX", "NIXL", "MPI"]


def test_the_committed_table_cites_a_source_for_every_release_it_read():
    data = json.loads((ROOT / "schemas" / "knowledge" / "generated" / "transports.json").read_text())
    for system in ("vllm", "sglang"):
        table = data[system]
        assert table["releases"], system
        for release, where in table["releases"].items():
            assert where["tag"] and (where.get("commit") or where.get("sha256")), (system, release)
    vllm = data["vllm"]["names"]
    # facts of issue 19, checked against the wheels: 0.34 adds UMBPStoreConnector; P2pNcclConnector left in 0.24
    assert vllm["UMBPStoreConnector"]["in"] == [["0.34.0", "0.34.0"]]
    assert vllm["P2pNcclConnector"]["in"][-1][1] == "0.23.0"


def test_dynamo_pd_protocols_are_the_table_keys_and_the_wrappers():
    text = ('KV_CONNECTOR_PROTOCOLS: Dict[str, Type[P]] = {"NixlConnector": NixlProtocol, "MooncakeConnector": MooncakeProtocol}\n'
            'MULTI_CONNECTOR_WRAPPERS: Tuple[str, ...] = ("MultiConnector", "PdConnector")\n')
    got = transports.dynamo_protocols(text)
    assert got["NixlConnector"][1] == "NixlProtocol" and got["PdConnector"][1] == "wrapper"
    assert set(got) == {"NixlConnector", "MooncakeConnector", "MultiConnector", "PdConnector"}


def test_go_sidecar_flags_are_read_from_calls_and_constants():
    import knowledge_llmd

    text = ('const (\n\tkvConnector = "kv-connector"\n\tconnector = "connector"\n)\n'
            'port := flag.String("port", "8000", "the port")\n'
            'fs.StringVar(&opts.KVConnector, kvConnector, opts.KVConnector, "the connector")\n'
            'fs.StringVar(&opts.connector, connector, "", "old")\n_ = fs.MarkDeprecated(connector, "use --kv-connector")\n')
    assert knowledge_llmd.go_flags(text) == {"--port": {}, "--kv-connector": {}, "--connector": {"deprecated": True}}


def test_the_llm_d_router_table_says_what_0_10_removed():
    from disagg.schemas import knowledge

    sidecar = ("llm-d-router", "llm-d-routing-sidecar")
    assert "0.10.0" not in knowledge.flag_releases(*sidecar, "--connector")
    assert "0.10.0" in knowledge.flag_releases(*sidecar, "--kv-connector")
    assert {"0.9.0"} <= knowledge.deprecated_releases(*sidecar, "--decoder-use-tls")
    assert "0.10.0" not in knowledge.flag_releases(*sidecar, "--decoder-use-tls")


def test_sidecar_connector_list_resolves_through_constants_of_other_files():
    import knowledge_llmd

    consts = 'package constants\n\nconst (\n\tKVConnectorA = "alpha"\n\tKVConnectorB = "beta-two"\n)\n'
    proxy = 'const (\n\tKVConnectorA = constants.KVConnectorA\n\tKVConnectorB = constants.KVConnectorB\n)\n'
    options = 'var (\n\tsupportedKVConnectors = map[string]struct{}{\n\t\tKVConnectorA: {},\n\t\tKVConnectorB: {},\n\t}\n)\n'
    assert knowledge_llmd.kv_connectors([consts, proxy, options]) == ["alpha", "beta-two"]
    old_main = 'var (\n\tsupportedConnectors = []string{\n\t\tproxy.ConnectorX,\n\t}\n)\n'
    assert knowledge_llmd.kv_connectors([old_main, 'const ConnectorX = "x1"\n']) == ["x1"]
    assert knowledge_llmd.kv_connectors([old_main]) is None  # an entry that does not resolve: no list rather than a short one


def test_the_sidecar_connector_table_follows_the_releases():
    from disagg.schemas import knowledge

    assert "nixl" not in knowledge.sidecar_connectors(frozenset(knowledge.sidecar_connector_releases_read()))
    assert knowledge.sidecar_connector_in("lmcache") == frozenset({"0.4.0", "0.5.0", "0.5.1"})
    assert "0.10.0" in knowledge.sidecar_connector_in("nixlv2") and "0.8.0" not in knowledge.sidecar_connector_in("mooncake")


def test_env_defaults_are_read_per_variable():
    import knowledge_env

    text = ('environment_variables = {\n    "VLLM_A": lambda: int(os.getenv("VLLM_A", "5600")),\n'
            '    "VLLM_B": lambda: os.getenv(\n        "VLLM_B", "localhost"\n    ),\n    "VLLM_C": lambda: maybe(os.environ.get("X")),\n}\n')
    assert knowledge_env.env_defaults(text) == {"VLLM_A": "5600", "VLLM_B": "localhost", "VLLM_C": None}


def test_the_generated_env_table_agrees_with_the_curated_side_channel_facts():
    from disagg.schemas import knowledge

    old, new = knowledge.fact("vllm.nixl_side_channel_port_5557").releases, knowledge.fact("vllm.nixl_side_channel_port_5600").releases
    for release in knowledge.env_releases("VLLM_NIXL_SIDE_CHANNEL_PORT"):
        want = "5557" if release in old else "5600" if release in new else None
        assert knowledge.env_default("VLLM_NIXL_SIDE_CHANNEL_PORT", release) == want, release
    # vLLM 0.34 lets the OS pick the encoder-cache side-channel port (5601 before) and advertises get_ip() by default
    assert knowledge.env_default("VLLM_EC_SIDE_CHANNEL_PORT", "0.33.0") == "5601"
    assert knowledge.env_default("VLLM_EC_SIDE_CHANNEL_PORT", "0.34.0") == "0"
    assert knowledge.env_default("VLLM_EC_SIDE_CHANNEL_HOST", "0.34.0") == ""


def test_dynamo_pins_are_the_extras_exact_requirements():
    import knowledge_pins

    text = ("Requires-Dist: vllm[flashinfer,otel]==0.31.0; extra == 'vllm'\nRequires-Dist: nixl[cu13]==1.4.1; extra == 'vllm'\n"
            "Requires-Dist: sglang[all]==0.4.9.post6; extra == 'sglang'\nRequires-Dist: nixl<=0.4.1; extra == 'sglang'\n"
            "Requires-Dist: uvloop; extra == 'vllm'\n")
    assert knowledge_pins.pins(text) == {"vllm": {"vllm": "0.31.0", "nixl": "1.4.1"}, "sglang": {"sglang": "0.4.9.post6"}}


def test_the_committed_pins_name_releases_of_our_tables():
    from disagg.schemas import knowledge

    assert knowledge.dynamo_pin("1.6.1", "vllm")[0] == "0.31.0"
    assert knowledge.dynamo_pin("1.1.0", "sglang")[0] == "0.5.10"  # 0.5.10.post1, as our release list names it
    for release in knowledge.known_releases()["dynamo"]:
        pin = knowledge.dynamo_pin(release, "vllm")
        assert pin is None or pin[0] in knowledge.known_releases()["vllm"], (release, pin)


def test_the_patched_vllm_releases_define_no_nixl_side_channel():
    from disagg.schemas import knowledge

    patched = knowledge.fact("vllm.dynamo_patched_connector").releases
    assert patched and not patched & knowledge.env_releases("VLLM_NIXL_SIDE_CHANNEL_PORT")


def test_the_first_factory_shape_is_read_too():
    text = ('class KVConnectorFactory:\n    @staticmethod\n    def create_connector(rank, local_rank, config):\n'
            '        supported_kv_connector = ["PyNcclConnector", "MooncakeConnector"]\n'
            '        if config.kv_transfer_config.kv_connector in supported_kv_connector:\n'
            '            from .simple_connector import SimpleConnector\n            return SimpleConnector(rank, local_rank, config)\n')
    assert transports.vllm_registered(text) == {n: ["vllm.distributed.kv_transfer.kv_connector.simple_connector", "SimpleConnector"]
                                               for n in ("PyNcclConnector", "MooncakeConnector")}


def test_release_candidates_sort_before_their_release():
    from disagg.schemas.knowledge import version_key
    tags = ["0.13.0", "0.13.0rc3", "0.7.3.post1", "0.13.0rc1", "0.7.3", "0.12.0rc1", "0.10.1.1"]
    assert sorted(tags, key=version_key) == ["0.7.3", "0.7.3.post1", "0.10.1.1", "0.12.0rc1", "0.13.0rc1", "0.13.0rc3", "0.13.0"]
    assert version_key("latest") == ()


def test_the_committed_vllm_ascend_table_reads_its_register_connector_calls():
    data = json.loads((ROOT / "schemas" / "knowledge" / "generated" / "transports.json").read_text())["vllm-ascend"]
    assert data["missing"] == [] and data["releases"]["0.25.1rc1"]["commit"]
    assert data["names"]["MooncakeConnectorV1"]["in"][-1][-1] == "0.25.1rc1"
    assert transports.read_names("vllm-ascend", {"a.py": 'KVConnectorFactory.register_connector("XConnector", "pkg.mod", "X")'}) == {"XConnector": ["pkg.mod", "X"]}
