"""Reading stacks: turn live frames and faulthandler dumps into plain records.

A record keeps the code object and the instruction offset, never the frame: a frame
holds the local variables, and those may be secrets that must never reach a report.
"""

from __future__ import annotations

import ast
import gc
import linecache
import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from types import CodeType, FrameType, ModuleType

from . import greenlets

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# The plugin's frames at a request's edge (`tracking`) and a loop step's (`steps`): what
# runs beneath them is the request's or the task's own code.
TRACKING_FILE = PLUGIN_DIR + "tracking.py"
STEPS_FILE = PLUGIN_DIR + "steps.py"


@dataclass(frozen=True)
class FrameRecord:
    filename: str
    lineno: int
    function: str
    module: str | None = None
    code: CodeType | None = None
    lasti: int = -1
    # Qualified type names of the locals, for the deepest app frame only: enough to
    # tell that `conn.execute(...)` is `sqlite3.Connection.execute`, never the values.
    local_types: tuple[tuple[str, str], ...] = ()
    # For a frame that makes something once (see `MADE_BY`), a hash of its name: tells one
    # template's compile from another's without keeping the name.
    made: int | None = None

    @property
    def is_library(self) -> bool:
        return is_library_file(self.filename)

    @property
    def is_plugin(self) -> bool:
        return self.filename.startswith(PLUGIN_DIR)


Stack = tuple[FrameRecord, ...]
"""Outermost frame first."""


def passes_through(code: CodeType) -> bool:
    """Is this plugin function a wrapper that only hands the app's call on?

    Such wrappers (strict mode's, the request tracker's, the test's) sit in the app's call
    path and declare `__tracebackhide__`, as pytest asks of frames a user should not see.
    Any other plugin frame on the loop thread is the plugin's own work done in the middle
    of the app's: a garbage-collection callback, a signal handler.
    """
    return "__tracebackhide__" in code.co_varnames


def as_the_app_made_it(stack: Stack) -> Stack:
    """The stack as the app's own code made it: the plugin's wrappers left out, and work
    that only ran in the middle of the app's (with everything it called) cut off: the
    plugin's own, and any library's garbage-collection callback (hypothesis keeps one), run
    by a collection the app's allocations set off."""
    kept: list[FrameRecord] = []
    callbacks = _gc_callback_codes()
    for frame in stack:
        if frame.is_plugin:
            if frame.code is not None and passes_through(frame.code):
                continue
            break
        if frame.code in callbacks:
            break
        kept.append(frame)
    return tuple(kept)


def _gc_callback_codes() -> set[CodeType]:
    codes = (getattr(callback, "__code__", None) for callback in gc.callbacks)
    return {code for code in codes if isinstance(code, CodeType)}


# (module, function) of frames that make one thing once (a template, a module), and the
# local naming it: filled in by `warmup`.
MADE_BY: dict[tuple[str | None, str], str] = {}

FrameRule = tuple[str, str, str]
"""(module, function or "" for any in the module, what a frame of it is doing)."""


def first_match(stack: Stack, rules: Sequence[FrameRule]) -> tuple[int, str] | None:
    """The outermost frame of `stack` a rule names, and what the rule says of it."""
    for index, frame in enumerate(stack):
        for module, function, label in rules:
            if frame.module == module and (not function or frame.function == function):
                return index, label
    return None


# What `capture` keeps of a frame on the hot path: its code, instruction offset, module,
# Jinja template (its lines are the template's, mapped later) and what it makes.
_RawFrame = tuple[CodeType, int, "str | None", object, "int | None"]


def _capture_raw(
    frame: FrameType | None, loop_thread: int | None, frames: list[FrameType] | None = None
) -> list[_RawFrame]:
    """Innermost frame first, up to the loop step's frame (`STEPS_FILE`): what runs above a
    step (the loop, the test runner, pytest) is never a hold's, and it is half the stack.

    On `loop_thread`'s stack, a greenlet's frames go on with the frames that switched to it.
    `frames`, if given, gets the live frames read, in the same order.
    """
    raw: list[_RawFrame] = []
    makers = _makers(len(MADE_BY))
    while frame is not None:
        if frames is not None:
            frames.append(frame)
        code = frame.f_code
        namespace = frame.f_globals
        module = namespace.get("__name__")
        made = None
        if code.co_name in makers:
            local = MADE_BY.get((module, _function_name(code)))
            made = _made(frame, local) if local is not None else None
        template = namespace.get("__jinja_template__")
        raw.append((code, frame.f_lasti, module, template, made))
        if code.co_filename == STEPS_FILE:
            break
        frame = frame.f_back
        if frame is None:
            frame = greenlets.waiting_frame(loop_thread)
            loop_thread = None
    return raw


@lru_cache(maxsize=1)
def _makers(_entries: int) -> frozenset[str]:
    """The plain names of `MADE_BY`'s functions: a cheap test for every frame."""
    return frozenset(function.rpartition(".")[2] for _, function in MADE_BY)


def _record(raw: _RawFrame) -> FrameRecord:
    code, lasti, module, template, made = raw
    return FrameRecord(
        filename=code.co_filename,
        lineno=_source_line(template, _line_at(code, lasti)),
        function=_function_name(code),
        module=module,
        code=code,
        lasti=lasti,
        made=made,
    )


@lru_cache(maxsize=4096)
def _line_at(code: CodeType, lasti: int) -> int:
    """What `frame.f_lineno` said, found later: it walks the line table on every read
    (a template's generated code is long, and every sample of a hold passes through it)."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line if line is not None else code.co_firstlineno
    return code.co_firstlineno


def capture(frame: FrameType | None, loop_thread: int | None = None) -> Stack:
    """The stack of `frame`, outermost first; `loop_thread` when it is that loop's."""
    return tuple(_record(raw) for raw in reversed(_capture_raw(frame, loop_thread)))


def _made(frame: FrameType, local: str) -> int | None:
    name = frame.f_locals.get(local)
    return hash(name) if isinstance(name, str) else None


def _source_line(template: object, lineno: int) -> int:
    """The frame's line in its source file.

    Code compiled from a template runs Python the template engine generated, numbered its
    own way; Jinja keeps the map back to the template's lines (it rewrites tracebacks with
    it), and a report must name the template's line: `{% include "rows.html" %}`.
    """
    to_template = getattr(template, "get_corresponding_lineno", None)
    if to_template is not None:
        try:
            return int(to_template(lineno))
        except Exception:  # a template object we do not know: its generated line then
            return lineno
    return lineno


class Captured:
    """A stack as a sampler takes it, made into records only when something reads it.

    The CPU alarm samples a hold every few milliseconds on the loop's own thread, and
    turning a deep stack (pytest's frames, then the framework's) into records there cost
    half a millisecond a sample: the hold grew by a tenth. Reports read the samples after
    the test.
    """

    __slots__ = ("_deepest", "_deepest_record", "_raw", "_stack")

    def __init__(
        self, raw: list[_RawFrame], deepest: int | None, deepest_record: FrameRecord | None
    ) -> None:
        self._raw: list[_RawFrame] | None = raw
        # Outermost-first index of the deepest app frame, and its record with the types
        # of its locals, taken while the frame was live.
        self._deepest = deepest
        self._deepest_record = deepest_record
        self._stack: Stack | None = None

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            raw = self._raw or []
            records = [_record(entry) for entry in reversed(raw)]
            if self._deepest is not None and self._deepest_record is not None:
                records[self._deepest] = self._deepest_record
            self._stack = tuple(records)
            self._raw = None
        return self._stack


def capture_lazily(frame: FrameType | None, loop_thread: int) -> Captured:
    return Captured(_capture_raw(frame, loop_thread), None, None)


def capture_with_local_types(
    frame: FrameType | None, loop_thread: int, *, read_source: bool = True
) -> Captured:
    """Like `capture`, plus the types of the locals of the deepest app frame.

    `read_source=False` on the loop's own thread (the CPU alarm's handler): a source file
    not read yet is not read there, in the middle of the hold.
    """
    frames: list[FrameType] = []
    raw = _capture_raw(frame, loop_thread, frames)
    found = next(
        (
            (index, candidate)
            for index, candidate in enumerate(frames)
            if not is_library_file(candidate.f_code.co_filename)
            and not candidate.f_code.co_filename.startswith(PLUGIN_DIR)
        ),
        None,
    )
    del frames
    if found is None:
        return Captured(raw, None, None)
    inner_index, app_frame = found
    record = _record(raw[inner_index])
    local_values = dict(list(app_frame.f_locals.items())[:64])
    types = [
        (name, _qualified_name(type(value)))
        for name, value in local_values.items()
        if not isinstance(value, ModuleType)
    ]
    types += _attribute_types(record, local_values, read_source)
    patched = FrameRecord(
        record.filename,
        record.lineno,
        record.function,
        record.module,
        record.code,
        record.lasti,
        tuple(types),
        record.made,
    )
    return Captured(raw, len(raw) - 1 - inner_index, patched)


_ATTRIBUTE = re.compile(r"\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)")


def _attribute_types(
    record: FrameRecord, local_values: dict[str, object], read_source: bool
) -> list[tuple[str, str]]:
    """Types of the locals' attributes the frame's line names (`self.conn` in
    `self.conn.execute(...)`), read from the objects' own `__dict__`: no property or
    `__getattr__` of the app runs from the watchdog's thread."""
    cached = linecache.cache.get(record.filename)
    if cached is None and read_source and record.filename.endswith(".py"):
        # Read once per module. Never a template: forty of them read one by one cost the
        # watchdog a GIL hand-over per read, and it all but stopped sampling.
        line = linecache.getline(record.filename, record.lineno)
    else:
        lines = cached[2] if cached is not None and len(cached) > 2 else []
        line = lines[record.lineno - 1] if 0 < record.lineno <= len(lines) else ""
    found = []
    for name, attribute in _ATTRIBUTE.findall(line):
        value = local_values.get(name)
        try:
            inner = vars(value).get(attribute) if value is not None else None
        except TypeError:  # no __dict__ (slots, builtins)
            continue
        if inner is not None and not isinstance(inner, ModuleType):
            found.append((f"{name}.{attribute}", _qualified_name(type(inner))))
    return found


def _function_name(code: CodeType) -> str:
    return code.co_qualname


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user_site, str):
        roots.add(user_site)
    return tuple(sorted({os.path.abspath(root) + os.sep for root in roots}))


@lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """Standard library, installed packages and interpreter internals: not the app."""
    if filename.startswith("<"):
        return True
    return os.path.abspath(filename).startswith(_library_roots())


@lru_cache(maxsize=4096)
def display_path(filename: str, rootdir: str) -> str:
    """Rootdir-relative for the project's files, import-path-relative for libraries."""
    absolute = os.path.abspath(filename)
    root = rootdir.rstrip(os.sep) + os.sep
    if absolute.startswith(root) and not is_library_file(absolute):
        return absolute[len(root) :]
    best = ""
    for entry in sys.path:
        entry = os.path.abspath(entry or ".") + os.sep
        if absolute.startswith(entry) and len(entry) > len(best):
            best = entry
    return absolute[len(best) :] if best else absolute


@dataclass(frozen=True)
class CallSite:
    """One line of code, and where on it the call that blocked stands."""

    filename: str
    lineno: int
    function: str
    source: str
    indent: int = 0
    start_col: int | None = None
    end_col: int | None = None
    callee: str | None = None

    def underline(self) -> str | None:
        if self.start_col is None or self.end_col is None:
            return None
        start = max(self.start_col - self.indent, 0)
        end = max(min(self.end_col - self.indent, len(self.source)), start + 1)
        return " " * start + "^" * (end - start)


def locate_call(record: FrameRecord, deeper: FrameRecord | None = None) -> CallSite:
    """Find the call expression a frame was executing, and what it called."""
    raw = linecache.getline(record.filename, record.lineno).rstrip("\n")
    columns = _columns_from_code(record)
    expression: ast.Call | None = None
    if columns is not None:
        start, end = columns
        expression = _parse_call(raw[start:end])
    else:
        calls = _calls_on_line(raw)
        if calls:
            expression = _pick_call(calls, deeper)
            if expression.end_col_offset is not None:
                columns = (expression.col_offset, expression.end_col_offset)
    callee = None
    if expression is not None:
        callee = resolve_callee(_dotted_name(expression.func), record)
    return CallSite(
        filename=record.filename,
        lineno=record.lineno,
        function=record.function,
        source=raw.strip(),
        indent=len(raw) - len(raw.lstrip()),
        start_col=columns[0] if columns else None,
        end_col=columns[1] if columns else None,
        callee=callee,
    )


def _columns_from_code(record: FrameRecord) -> tuple[int, int] | None:
    if record.code is None or record.lasti < 0:
        return None
    positions = next(islice(record.code.co_positions(), record.lasti // 2, None), None)
    if positions is None:
        return None
    lineno, end_lineno, col, end_col = positions
    if lineno != record.lineno or col is None or end_col is None:
        return None
    if end_lineno != lineno:
        end_col = len(linecache.getline(record.filename, record.lineno).rstrip("\n"))
    return col, end_col


def _parse_call(text: str) -> ast.Call | None:
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    return node if isinstance(node, ast.Call) else None


def _calls_on_line(raw: str) -> list[ast.Call]:
    """The call expressions on one source line, with columns relative to the line."""
    stripped = raw.lstrip()
    indent = len(raw) - len(stripped)
    candidates = [stripped, stripped.rstrip(":") + ": pass", stripped + ")", stripped + "])"]
    for candidate in candidates:
        try:
            tree = ast.parse(candidate)
        except SyntaxError:
            continue
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        for call in calls:
            call.col_offset += indent
            if call.end_col_offset is not None:
                call.end_col_offset = min(call.end_col_offset + indent, len(raw))
        return calls
    return []


def _pick_call(calls: Sequence[ast.Call], deeper: FrameRecord | None) -> ast.Call:
    if deeper is not None:
        for call in calls:
            if _dotted_name(call.func).rsplit(".", 1)[-1] == deeper.function.rsplit(".", 1)[-1]:
                return call
    return calls[0]


def _dotted_name(node: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted_name(node.func) + "()")
    else:
        parts.append("?")
    return ".".join(reversed(parts))


def resolve_callee(dotted: str, record: FrameRecord) -> str:
    """Turn `sleep` or `conn.execute` into `time.sleep` or `sqlite3.Connection.execute`.

    Only module dictionaries and class dictionaries are read, so no property or
    `__getattr__` of the app runs from the plugin's thread.
    """
    first, *rest = dotted.split(".")
    namespace = _module_namespace(record)
    value: object = namespace.get(first, _MISSING) if namespace is not None else _MISSING
    if value is _MISSING:
        value = vars(_builtins()).get(first, _MISSING)
    if value is _MISSING:
        # The longest name the frame's locals typed: `self.conn`, then `self`.
        local_types = dict(record.local_types)
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            type_name = local_types.get(".".join(parts[:cut]))
            if type_name:
                return ".".join([type_name, *parts[cut:]])
        return dotted
    for attribute in rest:
        if isinstance(value, ModuleType):
            value = vars(value).get(attribute, _MISSING)
        else:
            # An instance (a module-level lock, a client) is looked up on its class.
            cls = value if isinstance(value, type) else type(value)
            value = next(
                (vars(base)[attribute] for base in cls.__mro__ if attribute in vars(base)),
                _MISSING,
            )
        if value is _MISSING:
            return dotted
    return _qualified_name(value)


_MISSING = object()


def _builtins() -> ModuleType:
    import builtins

    return builtins


def _module_namespace(record: FrameRecord) -> dict[str, object] | None:
    module = sys.modules.get(record.module) if record.module else _module_for_file(record.filename)
    return vars(module) if module is not None else None


def _module_for_file(filename: str) -> ModuleType | None:
    target = os.path.abspath(filename)
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.abspath(path) == target:
            return module
    return None


def _qualified_name(value: object) -> str:
    if isinstance(value, ModuleType):
        return value.__name__
    target = value if callable(value) else type(value)
    module = getattr(target, "__module__", None) or getattr(
        getattr(target, "__objclass__", None), "__module__", None
    )
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    return f"{module}.{qualname}" if module else str(qualname)


def library_modules(records: Iterable[FrameRecord]) -> list[str]:
    """Dotted module names for library frames, best effort from their file paths."""
    names = []
    for record in records:
        if record.module:
            names.append(record.module)
            continue
        path = display_path(record.filename, "/")
        if path.endswith(".py"):
            path = path[:-3]
        names.append(path.replace(os.sep, ".").removesuffix(".__init__"))
    return names
