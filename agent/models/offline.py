"""`OfflineModel`: a deterministic smolagents `Model` that drives a `CodeAgent` with no LLM.

It needs no API key and no network. Every reply is decided from the messages alone: the task's
`FACTS_JSON: {...}` line (see `agent.prompts`) and the observations and errors of the model's
earlier steps in the same conversation. Each reply is a "Thought: ..." line followed by one
`<code>...</code>` action that calls the agent's tools, exactly as a real LLM's would be, so
everything it writes goes through the tools and the safety layer.

The policy, per agent call (step numbers are the model's own steps):

kind "propose":
    1. `check_drift()`, `get_experiment_history()` and `list_available_configs()`, printed.
    tier 2:
    2. `propose_trials([...])`: every untried model (facts `untried_models`, cross-checked with
       the `model` configs step 1 printed, less models of trials a human rejected), up to
       `n`, started at the best arm's parameters without its `model.*` keys. With no untried
       model left: `create_config_variant` of the best model with a `width` (doubled) and a
       proposal for that variant.
    3. `final_answer(...)` with the report; when nothing was accepted, the next plan (the width
       variant) first, then the final answer.
    tier 3:
    2. `read_model_source(<best model>)` (first lines printed), then the architecture
       `mutations(base, index)` (`agent.models.architectures`, index = facts `tier3_arms` plus
       the refusals seen so far, skipping tried names and variants over the campaign's
       `num_params` bound) rendered and registered with `register_generated_model` and
       proposed with `propose_trials`.
    3. on an error or a refusal the next index (at most 3 attempts), else `final_answer(...)`.
kind "summary":
    1. `get_experiment_history()` then `final_answer(<a few sentences written from the facts>)`.
anything else (no FACTS_JSON line, an unknown kind): `final_answer(<why>)`.

After `max_steps - 1` steps it always answers, so its own 6th step is a `final_answer`.
Two smolagents calls that are not agent steps get plain text instead of code: a planning call
(stop sequence `<end_plan>`) gets a short plan, and the final-answer call the agent makes when
it ran out of steps (no stop sequences, a user message last) gets the answer text itself.

Token usage is approximate (characters / 4) so that token accounting works offline.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from agent.models.architectures import (
    base_spec,
    estimate_params,
    family_of,
    model_args,
    mutations,
    render_source,
)
from agent.overrides import model_from_overrides, override_values
from agent.prompts import FACTS_PREFIX

logger = logging.getLogger(__name__)

__all__ = ["FACTS_PREFIX", "OfflineModel"]


_FACTS_LINE = re.compile(r"^[ \t]*FACTS_JSON: (.+?)[ \t]*$", re.MULTILINE)
_TAG = re.compile(r"\[offline:([a-z0-9_:]+)\]")
_MODELS_LINE = re.compile(r"^available models: (\[.*\])[ \t]*$", re.MULTILINE)
_REPORT_MARK = "propose_trials: "
_WIDTH_SUFFIX = re.compile(r"_w(\d+)$")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_INDEX_SCAN = 500  # mutation indices looked at for one attempt (budget and name skips)


@dataclass
class _Turn:
    """One earlier step of this model: its tag and what came back."""

    tag: str
    observation: str = ""
    error: str = ""

    @property
    def report(self) -> str:
        """What `propose_trials` printed in this step (after the report marker)."""
        at = self.observation.find(_REPORT_MARK)
        if at < 0:
            return ""
        text = self.observation[at + len(_REPORT_MARK) :]
        return text.split("Last output from code snippet:")[0].strip()

    @property
    def accepted(self) -> bool:
        """The step ran without error and `propose_trials` accepted something."""
        accepted = re.search(r"^\s*accepted\b", self.report, re.IGNORECASE | re.MULTILINE)
        return not self.error and accepted is not None


@dataclass
class _State:
    """What the messages say: the facts, the model's own earlier steps, the config names."""

    facts: dict[str, Any] | None
    turns: list[_Turn] = field(default_factory=list)
    available_models: list[str] | None = None


@dataclass(frozen=True)
class _Action:
    tag: str
    thought: str
    code: str


class OfflineModel(Model):
    """Deterministic policy as a smolagents `Model` (see the module docstring).

    Picklable (plain attributes only). `generate` never raises: a message it cannot interpret
    gets a `final_answer` that says so.

    Args:
        max_steps: its own steps per conversation; the last one is always a final answer.
        max_attempts: tier-3 registrations tried per conversation before giving up.
        **kwargs: passed to `smolagents.models.Model`.
    """

    def __init__(self, max_steps: int = 6, max_attempts: int = 3, **kwargs: Any) -> None:
        kwargs.setdefault("model_id", "offline")
        super().__init__(**kwargs)
        self.max_steps = max(1, int(max_steps))
        self.max_attempts = max(1, int(max_attempts))

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The next reply: a "Thought:" line and one `<code>` action (see the module docstring).

        Args:
            messages: the conversation so far (ChatMessage objects or dicts with role and
                content, content a string or a list of `{"type": "text", "text": ...}` parts).
            stop_sequences: ignored, except that `<end_plan>` marks a planning call and none at
                all (with a user message last) the agent's out-of-steps final-answer call.
            response_format: ignored.
            tools_to_call_from: ignored (code actions call the tools).
            **kwargs: ignored.

        Returns:
            An assistant `ChatMessage` with approximate `TokenUsage` (characters / 4).
        """
        texts = [(_role(m), _text(m)) for m in messages]
        try:
            content = self._reply(texts, stop_sequences)
        except Exception as e:  # the policy must never end the agent's run
            logger.exception("offline model could not decide a step")
            content = _render(
                _Action(
                    "final",
                    "I could not work out a next step, so I stop here.",
                    f"final_answer({_py(f'offline model: no step decided ({type(e).__name__})')})",
                )
            )
        usage = TokenUsage(
            input_tokens=sum(len(t) for _, t in texts) // 4, output_tokens=len(content) // 4
        )
        return ChatMessage(role=MessageRole.ASSISTANT, content=content, token_usage=usage)

    # ----------------------------------------------------------------- conversation state

    def _reply(self, texts: list[tuple[str, str]], stop_sequences: list[str] | None) -> str:
        state = _parse(texts)
        if stop_sequences and any("<end_plan>" in s for s in stop_sequences):
            return _plan(state) + "\n<end_plan>"
        assistant_seen = any(role == "assistant" for role, _ in texts)
        if not stop_sequences and assistant_seen and texts and texts[-1][0] == "user":
            return _answer_text(state)  # the agent's out-of-steps final answer
        return _render(self._decide(state))

    def _decide(self, state: _State) -> _Action:
        facts = state.facts
        if facts is None:
            return _final(
                "There is no FACTS_JSON line in the task, so the offline model has nothing to act "
                "on.",
                "offline model: the task has no FACTS_JSON line, so no proposal was made",
            )
        kind = facts.get("kind")
        if kind == "summary":
            if not state.turns:
                return _summary_action(facts)
            return _final(
                "The history could not be read; I answer from the facts.", _summary(facts)
            )
        if kind != "propose":
            return _final(
                f"The task kind {kind!r} is not one I know.",
                f"offline model: unknown task kind {kind!r}; expected 'propose' or 'summary'",
            )
        if len(state.turns) >= self.max_steps - 1:
            return _final("I have used my steps; I stop here.", _propose_outcome(state))
        if not state.turns:
            return _explore_action()
        if _int(facts.get("tier"), 2) >= 3:
            return self._tier3(state)
        return _tier2(state)

    def _tier3(self, state: _State) -> _Action:
        facts = state.facts or {}
        attempts = [t for t in state.turns if t.tag.startswith("propose3:")]
        if attempts and attempts[-1].accepted:
            return _final("The generated model was accepted.", _propose_outcome(state))
        if len(attempts) >= self.max_attempts:
            return _final(
                f"{len(attempts)} generated models were refused; I stop.", _propose_outcome(state)
            )
        refusals = sum(1 for t in attempts if not t.accepted)
        tried_indices = {int(t.tag.split(":")[1]) for t in attempts}
        best_model = _best_model(facts)
        base = base_spec(best_model)
        family = family_of(best_model)
        tried = {str(m) for m in facts.get("tried_models") or ()}
        budget = _param_budget(facts)
        start = _int(facts.get("tier3_arms"), 0) + refusals
        index = next(
            (
                i
                for i in range(start, start + _MAX_INDEX_SCAN)
                if i not in tried_indices
                and f"gen_{family}_{i}" not in tried
                and (budget is None or estimate_params(mutations(base, i)) <= budget)
            ),
            None,
        )
        if index is None:
            return _final(
                "No architecture variant fits the campaign's parameter bound.",
                f"offline model: no {family} variant has at most {budget} parameters; no "
                "generated model was proposed",
            )
        return _tier3_action(state, best_model, family, index, read_source=not attempts)


# --------------------------------------------------------------------------- parsing


def _role(message: ChatMessage | Mapping[str, Any]) -> str:
    role = message.get("role") if isinstance(message, Mapping) else message.role
    value = getattr(role, "value", role)
    return str(value)


def _text(message: ChatMessage | Mapping[str, Any]) -> str:
    content = message.get("content") if isinstance(message, Mapping) else message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "\n".join(parts)


def _parse(texts: Sequence[tuple[str, str]]) -> _State:
    facts: dict[str, Any] | None = None
    turns: list[_Turn] = []
    for role, text in texts:
        if role == "user" and facts is None:
            match = _FACTS_LINE.search(text)
            if match:
                try:
                    loaded = json.loads(match.group(1))
                except ValueError:
                    loaded = None
                facts = loaded if isinstance(loaded, dict) else None
        elif role in ("assistant", "tool-call"):
            tag = _TAG.search(text)
            if tag is None and (role == "tool-call" or text.lstrip().startswith("Calling tools:")):
                continue  # smolagents' echo of the code action as a tool call, not a turn
            turns.append(_Turn(tag.group(1) if tag else "unknown"))
        elif role in ("tool-response", "user") and turns:
            # an OpenAI-compatible server sees tool responses as user messages
            if "\nError:\n" in text or text.startswith("Error:"):
                turns[-1].error += text
            else:
                turns[-1].observation += text
    available = None
    for turn in turns:
        if turn.tag == "explore":
            match = _MODELS_LINE.search(turn.observation)
            if match:
                try:
                    names = ast.literal_eval(match.group(1))
                except (ValueError, SyntaxError):
                    names = None
                if isinstance(names, list):
                    available = [str(n) for n in names]
    return _State(facts=facts, turns=turns, available_models=available)


# ----------------------------------------------------------------------------- facts


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _arms(facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in facts.get("arms") or () if isinstance(a, dict)]


def _arm_model(arm: Mapping[str, Any]) -> str | None:
    model = arm.get("model")
    if isinstance(model, str) and model:
        return model
    return model_from_overrides(str(item) for item in arm.get("overrides") or ())


def _best_arm(facts: Mapping[str, Any]) -> dict[str, Any] | None:
    arms = _arms(facts)
    return next((a for a in arms if a.get("best_value") is not None), arms[0] if arms else None)


def _best_model(facts: Mapping[str, Any]) -> str | None:
    arm = _best_arm(facts)
    model = _arm_model(arm) if arm else None
    if model:
        return model
    tried = [str(m) for m in facts.get("tried_models") or ()]
    return tried[0] if tried else None


def _shared_params(arm: Mapping[str, Any] | None) -> dict[str, Any]:
    """The best trial's parameters another model can reuse: everything not `model.*`."""
    if not arm or not isinstance(arm.get("best_params"), dict):
        return {}
    return {
        str(k): v
        for k, v in arm["best_params"].items()
        if not str(k).startswith("model.") and _literal_ok(v)
    }


def _literal_ok(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


def _model_space_keys(facts: Mapping[str, Any]) -> list[str]:
    return [str(k) for k in (facts.get("space") or {}) if str(k).startswith("model.")]


def _reasons(facts: Mapping[str, Any]) -> str:
    reasons = [str(r) for r in facts.get("reasons") or () if str(r).strip()]
    return "; ".join(reasons) or "escalation requested"


def _param_budget(facts: Mapping[str, Any]) -> int | None:
    """The campaign's upper bound on `num_params`, less a 5% margin for the dataset's channels
    and classes (the estimate assumes 1 channel, 5 classes)."""
    spec = (facts.get("constraints") or {}).get("num_params")
    if not isinstance(spec, list | tuple) or len(spec) != 2:
        return None
    op, bound = spec
    if op not in ("<=", "<") or not isinstance(bound, int | float):
        return None
    return int(float(bound) * 0.95)


def _current_width(arm: Mapping[str, Any], model: str) -> int | None:
    """The arm's model width: tuned (best_params), fixed (overrides), or its config's."""
    params = arm.get("best_params") or {}
    width = params.get("model.width") if isinstance(params, dict) else None
    if width is None:
        width = override_values(str(item) for item in arm.get("overrides") or ()).get("model.width")
    if width is None:
        width = _config_width(model)
    try:
        return int(float(width)) if width is not None else None
    except (TypeError, ValueError):
        return None


def _config_width(model: str) -> int | None:
    """`width` of `configs/model/<model>.yaml` (the safety layer's config folder), if any."""
    if not _NAME.fullmatch(model):
        return None
    try:
        from agent.safety.files import config_dir
        from agent.safety.yaml_io import safe_load_yaml

        path = config_dir() / "model" / f"{model}.yaml"
        loaded = safe_load_yaml(path.read_text(encoding="utf-8"), source=str(path))
    except Exception:  # no such config, or not readable: the model has no known width
        return None
    width = loaded.get("width") if isinstance(loaded, dict) else None
    return width if isinstance(width, int) and not isinstance(width, bool) else None


# ----------------------------------------------------------------------------- actions


def _render(action: _Action) -> str:
    code = action.code.replace("</code>", "<\\x2fcode>").replace("<code>", "<\\x63ode>")
    return f"Thought: [offline:{action.tag}] {action.thought}\n<code>\n{code}\n</code>"


def _py(value: Any) -> str:
    """`value` as a Python literal for a code action."""
    return repr(value)


def _string_literal(text: str) -> str:
    """`text` as a string literal: triple-quoted when that reads back exactly, else repr()."""
    if "'''" not in text and "\\" not in text and not text.endswith("'"):
        literal = "'''" + text + "'''"
        try:
            if ast.literal_eval(literal) == text:
                return literal
        except (ValueError, SyntaxError):
            pass
    return repr(text)


def _final(thought: str, answer: str) -> _Action:
    return _Action("final", thought, f"final_answer({_py(answer)})")


def _explore_action() -> _Action:
    code = "\n".join(
        [
            "try:",
            "    print('signals:', check_drift())",
            "except Exception as e:",
            "    print('check_drift failed:', e)",
            "try:",
            "    print(get_experiment_history())",
            "except Exception as e:",
            "    print('get_experiment_history failed:', e)",
            "try:",
            "    configs = list_available_configs()",
            "    print('available models:', configs.get('model', []))",
            "    print('config groups:', sorted(configs))",
            "except Exception as e:",
            "    print('list_available_configs failed:', e)",
        ]
    )
    return _Action(
        "explore",
        "First I read the signals, the history and the available configs.",
        code,
    )


def _tier2(state: _State) -> _Action:
    attempts = [t for t in state.turns if t.tag.startswith("propose2:")]
    if attempts and attempts[-1].accepted:
        return _final("The proposals were handed over.", _propose_outcome(state))
    plans = _tier2_plans(state)
    if len(attempts) >= len(plans):
        if not plans:
            return _final(
                "Every model was tried and none has a width to widen.",
                "offline model: every allowed model was tried and none of the tried models "
                "has a width to widen; nothing proposed at tier 2 (tier 3 can write new "
                "architectures)",
            )
        return _final("Nothing I proposed was accepted.", _propose_outcome(state))
    thought, code = plans[len(attempts)]
    return _Action(f"propose2:{len(attempts)}", thought, code)


def _tier2_plans(state: _State) -> list[tuple[str, str]]:
    """(thought, code) of each tier-2 attempt, in order: the untried models, then a width
    variant of the best model."""
    facts = state.facts or {}
    n = max(1, _int(facts.get("n"), 1))
    best = _best_arm(facts)
    params = _shared_params(best)
    drops = _model_space_keys(facts)
    reasons = _reasons(facts)
    plans: list[tuple[str, str]] = []
    untried = [str(m) for m in facts.get("untried_models") or ()]
    if state.available_models is not None:
        untried = [m for m in untried if m in state.available_models]
    rejected = _rejected_models(facts)
    untried = [m for m in untried if _NAME.fullmatch(m) and m not in rejected][:n]
    if untried:
        proposals = [
            {
                "name": m,
                "overrides": [f"model={m}"],
                "params": params,
                "drop_params": drops,
                "rationale": f"{m} has not been tried yet; the signals say: {reasons}",
                "tier": 2,
            }
            for m in untried
        ]
        plans.append(
            (
                f"{', '.join(untried)} not tried yet; I propose "
                f"{'it' if len(untried) == 1 else 'them'} at the best arm's parameters.",
                _propose_code(proposals),
            )
        )
    variant = _width_variant(facts)
    if variant is not None and variant[1] not in rejected:
        base, name, width = variant
        proposal = {
            "name": name,
            "overrides": [f"model={name}"],
            "params": params,
            "drop_params": drops,
            "rationale": (
                f"every allowed model was tried; {base} is the best so far, widened to "
                f"{width} channels; the signals say: {reasons}"
            ),
            "tier": 2,
        }
        code = "\n".join(
            [
                f"path = create_config_variant('model', {_py(base)}, {_py(name)}, "
                f"{_py({'width': width})})",
                "print('config variant:', path)",
                _propose_code([proposal]),
            ]
        )
        plans.append((f"Every model was tried; I widen {base} to {width} as {name}.", code))
    return plans


def _rejected_models(facts: Mapping[str, Any]) -> set[str]:
    """Models selected (`model=<name>`) by trials a human rejected: not proposed again."""
    out = set()
    for overrides in facts.get("rejected") or ():
        if isinstance(overrides, list):
            model = _arm_model({"overrides": overrides})
            if model:
                out.add(model)
    return out


def _width_variant(facts: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """(base config, variant name, new width) for the best arm whose model has a width."""
    tried = {str(m) for m in facts.get("tried_models") or ()}
    arms = sorted(_arms(facts), key=lambda a: a.get("best_value") is None)  # stable: best first
    for arm in arms:
        model = _arm_model(arm)
        if not model or not _NAME.fullmatch(model) or model.startswith("gen_"):
            continue
        width = _current_width(arm, model)
        if width is None or width < 1:
            continue
        root = _WIDTH_SUFFIX.sub("", model)
        new = 2 * width
        for _ in range(4):  # skip variants tried already
            name = f"{root}_w{new}"
            if name not in tried and name != model:
                break
            new *= 2
        else:
            continue
        if _NAME.fullmatch(name):
            return model, name, new
    return None


def _propose_code(proposals: list[dict[str, Any]]) -> str:
    lines = ["proposals = ["]
    lines += [f"    {_py(p)}," for p in proposals]
    lines += ["]", "report = propose_trials(proposals)", f"print({_py(_REPORT_MARK)} + report)"]
    return "\n".join(lines)


def _tier3_action(
    state: _State, best_model: str | None, family: str, index: int, *, read_source: bool
) -> _Action:
    facts = state.facts or {}
    spec = mutations(base_spec(best_model), index)
    source = render_source(spec)
    name = f"gen_{family}_{index}"
    params = estimate_params(spec)
    lines: list[str] = []
    if read_source and best_model:
        lines += [
            "try:",
            f"    source = read_model_source({_py(best_model)})",
            f"    print({_py(f'source of {best_model}:')})",
            "    print('\\n'.join(source.splitlines()[:12]))",
            "except Exception as e:",
            "    print('read_model_source failed:', e)",
        ]
    proposal = {
        "name": name,
        "overrides": [f"model={name}"],
        "params": _shared_params(_best_arm(facts)),
        "drop_params": _model_space_keys(facts),
        "rationale": (
            f"generated architecture {spec.class_name} ({spec.describe()}; about {params:,} "
            f"parameters), variant {index} of the {family} family next to the best model "
            f"{best_model or '(none yet)'}; the signals say: {_reasons(facts)}"
        ),
        "tier": 3,
    }
    lines += [
        f"code = {_string_literal(source)}",
        f"m = register_generated_model({_py(name)}, code, {_py(model_args(spec))})",
        "print(m)",
        "proposals = [",
        f"    {_py(proposal)},",
        "]",
        "proposals[0]['model_source'] = code",
        "report = propose_trials(proposals)",
        f"print({_py(_REPORT_MARK)} + report)",
    ]
    refused = sum(1 for t in state.turns if t.tag.startswith("propose3:"))
    thought = (
        f"I write {spec.class_name} ({spec.describe()}) as {name}, register it and propose it."
        if not refused
        else f"The last model was refused; I try the next variant, {name} ({spec.describe()})."
    )
    return _Action(f"propose3:{index}", thought, "\n".join(lines))


def _propose_outcome(state: _State) -> str:
    """The final answer of a propose conversation: what was proposed and what came back."""
    attempts = [t for t in state.turns if t.tag.startswith("propose")]
    if not attempts:
        return "offline model: no proposal was made"
    lines = []
    for turn in attempts:
        if turn.error:
            lines.append(_first_error_line(turn.error))
        elif turn.report:
            lines.append("; ".join(x.strip() for x in turn.report.splitlines() if x.strip()))
    tier = _int((state.facts or {}).get("tier"), 2)
    accepted = any(t.accepted for t in attempts)
    head = f"proposed at tier {tier}: " if accepted else "no proposal was accepted: "
    return head + " | ".join(lines)


def _first_error_line(error: str) -> str:
    text = error.split("Error:\n", 1)[-1]
    text = text.split("\nNow let's retry", 1)[0]
    return " ".join(text.split())[:500]


# ----------------------------------------------------------------------------- summary


def _summary_action(facts: Mapping[str, Any]) -> _Action:
    code = "\n".join(
        [
            "history = get_experiment_history()",
            "print(history)",
            f"final_answer({_py(_summary(facts))})",
        ]
    )
    return _Action("summary", "I read the history and write the campaign's summary.", code)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _summary(facts: Mapping[str, Any]) -> str:
    """A few sentences from the facts: runs, best run, what was tried, what to try next."""
    campaign = facts.get("campaign") or "the campaign"
    metric = facts.get("metric") or "the metric"
    counts = facts.get("counts") or {}
    status = ", ".join(f"{n} {s}" for s, n in counts.items()) if isinstance(counts, dict) else ""
    n_runs = _int(facts.get("n_runs"), sum(_int(n, 0) for n in dict(counts or {}).values()))
    sentences = [f"{campaign} ran {n_runs} trials" + (f" ({status})." if status else ".")]
    best = facts.get("best")
    if isinstance(best, dict) and best.get("value") is not None:
        config = ", ".join(str(o) for o in best.get("overrides") or ()) or "the base config"
        params = best.get("params") or {}
        tuned = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()) if params else ""
        sentences.append(
            f"The best {metric} ({facts.get('mode') or 'best'}) is {_fmt(best['value'])}, from "
            f"run {best.get('run_id')} of arm {best.get('arm')} (tier {best.get('tier')}, "
            f"model {best.get('model')}; {config}" + (f"; {tuned}" if tuned else "") + ")."
        )
    else:
        sentences.append(f"No trial reported a usable {metric} value.")
    arms = _arms(facts)
    by_tier: dict[int, list[str]] = {}
    for arm in arms:
        by_tier.setdefault(_int(arm.get("tier"), 0), []).append(str(arm.get("name")))
    if by_tier:
        tiers = "; ".join(f"tier {t}: {', '.join(names)}" for t, names in sorted(by_tier.items()))
        sentences.append(f"Arms tried by tier: {tiers}.")
    tried = [str(m) for m in facts.get("tried_models") or ()]
    if tried:
        sentences.append(f"Models tried: {', '.join(tried)}.")
    reasons = [str(r) for r in facts.get("reasons") or ()]
    if reasons:
        sentences.append(f"Last signals: {'; '.join(reasons)}.")
    sentences.append(_next_step(facts))
    tokens = facts.get("tokens_used")
    if tokens is not None:
        sentences.append(f"Agent tokens used: {tokens}.")
    return " ".join(sentences)


def _next_step(facts: Mapping[str, Any]) -> str:
    untried = [str(m) for m in facts.get("untried_models") or ()]
    max_tier = _int(facts.get("max_tier"), 2)
    tier3 = _int(facts.get("tier3_arms"), 0)
    if untried:
        return f"Next, try the untried models: {', '.join(untried)}."
    if max_tier < 3:
        return (
            "Next, widen the best model further or raise max_tier to 3 so that the agent can "
            "write new architectures."
        )
    if tier3:
        return (
            "Next, tune the best generated architecture longer and mutate it further (depth, "
            "kernel size, attention)."
        )
    return "Next, let tier 3 write new architectures around the best model."


def _plan(state: _State) -> str:
    kind = (state.facts or {}).get("kind")
    if kind == "summary":
        return "Plan: read the history, then write the campaign's summary from the facts."
    return (
        "Plan: 1. read the signals, the history and the available configs; 2. propose untried "
        "models, a wider variant or a generated architecture with the tools; 3. report what "
        "was accepted."
    )


def _answer_text(state: _State) -> str:
    """The plain-text answer of the agent's out-of-steps final-answer call."""
    facts = state.facts
    if facts is None:
        return "offline model: the task has no FACTS_JSON line, so no proposal was made"
    if facts.get("kind") == "summary":
        return _summary(facts)
    return _propose_outcome(state)
