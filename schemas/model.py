"""The one deployment model every reader produces and every rule checks.

A `Deployment` is what one file says: workers (processes that serve, route or front requests) with their role, the
engine and the system that launches them, the candidate releases they run (`Target`), their effective arguments
and environment, the host they share a network with, resources, replicas, and the source span of every value.
A value that the file cannot tell (`$MODEL` resolved at run time, an image entrypoint whose command is not in the
file) is an `Unknown` with the reason, never a guess: rules compare only known values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from .knowledge.versions import Target
from .source import SourceDocument, Span

# "processor": a component between the frontend and the engines that holds no KV cache (Dynamo's multimodal processor)
ROLES = ("prefill", "decode", "aggregated", "frontend", "router", "proxy", "encode", "processor", "planner", "unknown")
ENGINE_ROLES = ("prefill", "decode", "aggregated", "unknown")

# Where a worker's role comes from. All but "name" are what the serving system itself reads to decide the role; a
# name (a section, container or variable called "prefill", a comment, an echo line) is a guess, and a finding whose
# verdict rests on a guessed role is at most an info (doctor/context.py caps it).
ROLE_SOURCES = {
    "flag": "the engine's own flag or environment (--disaggregation-mode, --is-prefill-worker, DYN_VLLM_DISAGGREGATION_MODE)",
    "connector": "the KV connector's role (kv_role kv_producer / kv_consumer)",
    "router": "a router or proxy that sends that traffic to it (--prefill/--decode URLs, --prefiller-ports)",
    "field": "a field the system reads (a CRD or chart role field, a Dynamo v0 service class, TensorRT-LLM context_servers)",
    "program": "the program itself (a frontend, router or proxy)",
    "default": "what the system does when nothing says (an unflagged dynamo.vllm beside prefill workers is their decode side)",
    "name": "only a name nearby (a section, container, variable or comment that says prefill or decode)",
    "none": "not recorded: the role is unknown, or a reader set it without saying how (never taken for a name)",
}


class Unknown:
    """A value the file does not determine, and why.

    The reason is for people; what a reader or rule must act on is carried as data beside it (never parsed back out
    of the reason): `written`, the value's own text where the file writes one that is set at run time (`$PD_MASTER_IP`),
    and `unread_file`, the file not in this run that holds the value (a `--config` file read as arguments). Both
    restate part of the reason, so two Unknowns with one reason are equal."""

    __slots__ = ("reason", "written", "unread_file")

    def __init__(self, reason: str, *, written: str | None = None, unread_file: str | None = None):
        self.reason = reason
        self.written = written
        self.unread_file = unread_file

    @classmethod
    def set_at_run_time(cls, written: str, what: str | None = None) -> Unknown:
        """`written` (`$MODEL`, `${X}`, `$(POD_IP)`) as a shell or Kubernetes fills it in at run time; `what`: how the
        reason names it, when not by that text alone (`KEY=$VALUE`)."""
        return cls(f"{what or written} is set at run time", written=written)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(("Unknown", self.reason))

    def __repr__(self) -> str:
        return f"Unknown({self.reason!r})"

    def __str__(self) -> str:
        return f"unknown ({self.reason})"


class Setting(NamedTuple):
    """One value of a worker with where it came from: `origin` says how (`--block-size`, `env`, `default`, ...)."""

    value: Any
    span: Span | None = None  # None: not written in the file (a default, or inferred)
    origin: str = ""

    @property
    def known(self) -> bool:
        return not isinstance(self.value, Unknown)

    @property
    def written(self) -> bool:
        return self.span is not None


def is_loopback(address: str) -> bool:
    """An address that reaches only the machine (or network namespace) that uses it: 127.0.0.0/8, ::1, localhost."""
    return address.startswith("127.") or address in ("localhost", "::1", "[::1]")


class Branch(NamedTuple):
    """One branch of an `if`/`case` that a script process runs in (see schemas/shell_flow.py).

    Two processes can run in one invocation when, for every frame they share, they are in the same branch, and for
    every selector variable they share, some value selects both. `per_process`: the branches are selected by a role
    or a host rank, so the script is run once per branch and its branches are one deployment."""

    frame: str  # "case at line 12#3": one run of one if/case
    index: int  # which branch of the frame
    selector: str | None  # the variable whose value selects the branch ($CONFIG, $1); None: not a test of a variable
    values: frozenset[str] | None  # the values that select it; None: any value except `excluded` (`*)`, `else`)
    excluded: frozenset[str]
    per_process: bool


class Host(NamedTuple):
    """Where a worker's network lives: workers with the same `network` share ports and `localhost`."""

    kind: str  # process (a script's processes share the machine), pod, container, node, netns, unknown
    name: str
    network: str  # key: equal keys share a network namespace
    node: str | None = None  # the node a pod is pinned to, when the file says
    decided_at: tuple[int, int] | None = None  # (line, column) of the field that put it on the node (`hostNetwork`)

    def apart(self, other: "Host") -> bool | None:
        """True when the two are certainly different network namespaces, False when they share one, None when that is
        not known: a host named at run time (`ssh $HOST`), a process a cluster launcher places (srun, mpirun), a
        hostNetwork pod not pinned to a node (it may land on the other's node)."""
        if self.network == other.network:
            return False
        if "unknown" in (self.kind, other.kind) or any(h.network.startswith("unpinned-host:") for h in (self, other)):
            return None
        return True


class Worker:
    """A process that serves, routes or fronts requests, as the file describes it."""

    __slots__ = ("name", "_role", "role_why", "role_from", "program", "engine", "system", "path", "span", "target", "host", "settings", "flags", "env",
                 "replicas", "gpus", "nodes", "labels", "namespace", "section", "notes", "alternative", "epoch", "__weakref__")

    def __init__(self, name: str, role: str, role_why: str, program: str, engine: str | None, system: str, path: str, span: Span,
                 target: Target, host: Host, labels: dict[str, str] | None = None, section: tuple[str, ...] | None = None,
                 role_from: str = "none"):
        self.name = name
        self.role = role  # one of ROLES
        self.role_why = role_why  # what made it that role ("--disaggregation-mode prefill", "section PrefillWorker", ...)
        self.role_from = role_from  # one of ROLE_SOURCES: what kind of thing made it that role
        self.program = program  # vllm | dynamo.vllm | sglang | dynamo.sglang | dynamo.trtllm | trtllm-serve | dynamo.frontend | ...
        self.engine = engine  # vllm | sglang | trtllm (the engine that computes KV), None for frontends and routers
        self.system = system  # the stack that launches it: dynamo | vllm | sglang | trtllm | llm-d | kserve
        self.path = path  # file it was read from
        self.span = span  # where it is declared (its command, section or container)
        self.target = target
        self.host = host
        self.settings: dict[str, Setting] = {}  # normalised names: model, tp, block_size, kv_connector, ...
        self.flags: dict[str, Setting] = {}  # every --flag as written (dashes), its value or "true"
        self.env: dict[str, Setting] = {}
        self.replicas = Setting(1, None, "default")
        self.gpus = Setting(None, None, "unset")  # per replica and node
        self.nodes = 1  # nodes one replica spans (multinode / LeaderWorkerSet size)
        self.labels = dict(labels or {})
        self.namespace: str | None = None  # the Dynamo namespace that scopes discovery
        self.section = section  # Dynamo v0: the section path, for fixes
        self.notes: list[str] = []  # what the reader could not check, in words
        self.alternative: tuple[Branch, ...] | None = None  # the script branches it runs in; None: every invocation
        self.epoch = 0  # scripts: how many kill/wait commands ran before it started (different epochs never ran together)

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, {self.role}, {self.program})"

    def value(self, key: str, default: Any = None) -> Any:
        """A setting's value when known; `default` when unset; an Unknown stays Unknown."""
        s = self.settings.get(key)
        return default if s is None else s.value

    def known(self, key: str, default: Any = None) -> Any:
        """A setting's value, or `default` when unset or unknown."""
        s = self.settings.get(key)
        return default if s is None or not s.known else s.value

    def where(self, key: str) -> Span:
        """Where a setting is written, else where the worker is declared."""
        s = self.settings.get(key) or self.flags.get(key)
        return s.span if s is not None and s.span is not None else self.span

    def set(self, key: str, value: Any, span: Span | None, origin: str) -> None:
        self.settings[key] = Setting(value, span, origin)

    @property
    def role(self) -> str:
        return self._role

    @role.setter
    def role(self, value: str) -> None:
        # a reader that sets the role without saying how leaves no provenance: "none" (never taken for a name)
        self._role = value
        self.role_from = "none"

    def set_role(self, role: str, why: str, source: str) -> None:
        """Give the worker a role, saying why in words (`why`) and what kind of evidence it is (`source`, a ROLE_SOURCES key)."""
        assert source in ROLE_SOURCES, source
        self.role, self.role_why, self.role_from = role, why, source

    @property
    def role_guessed(self) -> bool:
        """True when only a name says what role this worker plays: nothing the system reads decides it."""
        return self.role_from == "name" and self.role in ("prefill", "decode")

    @property
    def is_engine(self) -> bool:
        return self.role in ENGINE_ROLES and self.engine is not None

    def label(self) -> str:
        return f"{self.name} ({self.role})"


class Issue(NamedTuple):
    """Something a reader found that does not fit: an unknown section or key, a wrong type, a missing common key."""

    kind: str  # unknown_section | unknown_key | wrong_type | common_key_missing | false_dropped | not_checked | ...
    span: Span
    message: str
    suggestion: str | None = None
    data: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.data).get(key, default)


class Deployment:
    """What one file says."""

    __slots__ = ("path", "format", "workers", "router", "router_span", "issues", "doc", "lines", "links", "services", "parts", "maybe_alongside")

    def __init__(self, path: str, format: str, doc: SourceDocument | None = None, lines: list[str] | None = None):
        self.path = path
        self.format = format  # dynamo-v0 | script | kubernetes | dynamo-graph | compose | llm-d | helm-values | trtllm
        self.workers: list[Worker] = []
        self.router: dict[str, Setting] = {}  # llm-d scheduler settings (EPP plugins, profiles)
        self.router_span: Span | None = None
        self.issues: list[Issue] = []
        self.doc = doc  # the parsed YAML, for fixes (Dynamo v0)
        self.lines = lines or []
        self.links: list[Any] = []  # what this file offers other files of a run, or needs from them (OME runtimes)
        self.services: list[Any] = []  # Kubernetes Services (kube_services.Service): which pods a name reaches
        # further configs the file holds, each a deployment of its own that is checked as if it were a file of its own
        # (the other Dynamo v0 configs written in strings of one chart's values: readers/__init__.py says why)
        self.parts: list[Deployment] = []
        # workers of other configs of the same file that may or may not run with this one (which do is decided outside
        # the file): never paired with this deployment's, but what is absent here may be there
        self.maybe_alongside: list[Worker] = []

    def of_role(self, *roles: str) -> list[Worker]:
        return [w for w in self.workers if w.role in roles]

    def engines(self) -> list[Worker]:
        return [w for w in self.workers if w.is_engine]

    def intent(self) -> str | None:
        """Why this file looks like disaggregated serving (for 'not checked' notes), or None."""
        if self.of_role("prefill"):
            return "it has a prefill worker"
        if self.of_role("decode"):
            return "it has a decode worker"
        if any(w.known("kv_connector") for w in self.workers):
            return "a worker sets a KV connector"
        if any(k.startswith("profile:prefill") for k in self.router):
            return "its scheduler has a prefill profile"
        return next((link.needs for link in self.links if getattr(link, "needs", None)), None)


# A worker of one of a file's alternative configs (an srtctl override variant) is named with the variant, in one
# spelling, so that a finding the same in several variants can be reported once with all of their names.
VARIANT_IN_NAME = re.compile(r" \(variant ([^()]+)\)")


def in_variant(name: str, label: str) -> str:
    return f"{name} (variant {label})"


class Pair(NamedTuple):
    """A decode and a prefill worker that must exchange KV: what P and D must agree on is checked per pair."""

    decode: Worker
    prefill: Worker
    why: str  # how they were linked ("same file", "same model and labels across files", ...)
    guess: str = ""  # why the link is only an inference (alternatives across files), "" when nothing contradicts it

    @property
    def cross_file(self) -> bool:
        return self.decode.path != self.prefill.path

    def ends(self) -> Iterator[Worker]:
        yield self.decode
        yield self.prefill
