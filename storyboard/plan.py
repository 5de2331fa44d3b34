"""The planner: a validated storyboard -> the list of renders to do, grouped and keyed.

- Character references are resolved into full prompts.
- Shots that share a character (directly or through a chain) form a consistency group.
- In a group rendered with anchors, a few shots per character are anchors: rendered together,
  their subject keys/values cached; every other shot renders alone against them.
- Each shot gets a cache key hashing exactly what changes its frames:
  its own request (prompt, negative prompt, frames, seed, steps, guidance, motion clip content and
  strength), the model's weights fingerprint and its own method defaults (`model_settings`:
  shared-key weight, intervened blocks, refinement range, transfer blocks), and, when a
  consistency variant couples it to other shots, the variant (resolved: unset means the
  model's default) with the settings it reads (`motionq.api.VARIANT_FIELDS`; an unset
  refinement range resolved to the model's) and the requests of the shots it is coupled to
  (the whole group in joint mode, the anchors in anchor mode), in order. Nothing else: not the
  output size, not the title, not the transitions, not `anchors` beyond the grouping it makes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from motionq.api import (
    PAPER_REFINE_RANGE,
    VARIANT_FIELDS,
    ConsistencyConfig,
    GroupRequest,
    MotionSpec,
    ShotRequest,
)
from storyboard.schema import Issue, Storyboard

#: Bump when the rendering code changes what a given request produces.
#: 2: subject masks exclusive between a shot's characters; the refinement range left to the model.
#: 3: only the consistency settings the variant reads (same frames; keys of v2 no longer match).
KEY_VERSION = 3

#: Groups larger than this use anchor mode when `anchors = "auto"`.
AUTO_ANCHOR_THRESHOLD = 4
#: Anchors per character in anchor mode.
ANCHORS_PER_CHARACTER = 2


@dataclass(frozen=True)
class PlannedShot:
    """One shot as the renderer sees it."""

    index: int
    request: ShotRequest
    duration: float
    transition: str
    transition_duration: float
    group: str
    anchor: bool
    key: str
    motion_digest: str | None = None

    @property
    def shot_id(self) -> str:
        return self.request.shot_id


@dataclass(frozen=True)
class PlannedGroup:
    """Shots whose characters are kept consistent together."""

    id: str
    shot_ids: tuple[str, ...]
    characters: tuple[str, ...]
    anchors: tuple[str, ...]  # empty: all shots render jointly (or independently for vanilla)
    coupled: bool = True  # False: the variant renders every shot on its own (vanilla)

    @property
    def mode(self) -> str:
        """single, independent (vanilla), joint, or anchors."""
        if len(self.shot_ids) == 1:
            return "single"
        if not self.coupled:
            return "independent"
        return "anchors" if self.anchors else "joint"


@dataclass
class Plan:
    """Everything a render needs, derived from the storyboard alone (plus the model hash)."""

    storyboard: Path
    model: str
    model_fingerprint: str
    consistency: ConsistencyConfig
    fps: int
    size: tuple[int, int]
    title: str
    shots: list[PlannedShot]
    groups: list[PlannedGroup] = field(default_factory=list)

    def shot(self, shot_id: str) -> PlannedShot:
        for s in self.shots:
            if s.shot_id == shot_id:
                return s
        raise KeyError(shot_id)

    def group_of(self, shot_id: str) -> PlannedGroup:
        return next(g for g in self.groups if shot_id in g.shot_ids)

    @property
    def duration(self) -> float:
        """Length of the edit: durations minus the overlaps of crossfades."""
        total = sum(s.duration for s in self.shots)
        overlap = sum(s.transition_duration for s in self.shots[:-1] if s.transition == "crossfade")
        return total - overlap

    def group_request(self, group: PlannedGroup, shot_ids: list[str] | None = None) -> GroupRequest:
        ids = shot_ids or list(group.shot_ids)
        return GroupRequest(
            shots=tuple(self.shot(i).request for i in ids), consistency=self.consistency
        )

    def to_json(self) -> dict:
        return {
            "storyboard": str(self.storyboard),
            "title": self.title,
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "fps": self.fps,
            "size": list(self.size),
            "duration": round(self.duration, 6),
            "consistency": self.consistency.to_dict(),
            "groups": [
                {"id": g.id, "mode": g.mode, "shots": list(g.shot_ids),
                 "characters": list(g.characters), "anchors": list(g.anchors)}
                for g in self.groups
            ],
            "shots": [
                {
                    "id": s.shot_id, "index": s.index, "key": s.key, "group": s.group,
                    "anchor": s.anchor, "prompt": s.request.prompt,
                    "characters": list(s.request.characters), "frames": s.request.num_frames,
                    "duration": s.duration, "seed": s.request.seed, "steps": s.request.steps,
                    "guidance": s.request.guidance,
                    "motion": None if s.request.motion is None else {
                        "clip": str(s.request.motion.clip), "strength": s.request.motion.strength,
                        "sha256": s.motion_digest,
                    },
                    "transition": s.transition, "transition_duration": s.transition_duration,
                }
                for s in self.shots
            ],
        }


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    from motionq.api import file_digest

    return file_digest(Path(path))


def _request_identity(req: ShotRequest, motion_digest: str | None) -> dict:
    """What of a request changes its frames (the clip by content, not by path)."""
    d = asdict(req)
    d.pop("shot_id")  # renaming a shot does not change its frames
    d.pop("characters")  # names don't reach the model; their prompts do (in prompt/subjects)
    if req.motion is not None:
        d["motion"] = {"sha256": motion_digest, "strength": req.motion.strength}
    return d


def _consistency_identity(consistency: ConsistencyConfig, settings: dict) -> dict:
    """What of the consistency settings changes a coupled shot's frames: the variant and the
    fields it reads, an unset refinement range resolved to the one the model renders with. Not
    `anchors`: who is coupled to whom is in the key's partners already."""
    out: dict = {"variant": consistency.variant}
    for name in VARIANT_FIELDS[consistency.variant]:
        value = getattr(consistency, name)
        if name == "refine_range" and value is None:
            value = settings.get("refine_range", PAPER_REFINE_RANGE)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _groups(shot_chars: list[tuple[str, tuple[str, ...]]]) -> list[list[int]]:
    """Connected components of shots linked by shared characters (union-find), in shot order."""
    parent = list(range(len(shot_chars)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for i, (_, chars) in enumerate(shot_chars):
        for c in chars:
            if c in first_with:
                parent[find(i)] = find(first_with[c])
            else:
                first_with[c] = i
    comps: dict[int, list[int]] = {}
    for i in range(len(shot_chars)):
        comps.setdefault(find(i), []).append(i)
    return sorted(comps.values(), key=lambda c: c[0])


def _pick_anchors(members: list[int], chars_of: list[tuple[str, ...]], explicit: set[int],
                  consistency: ConsistencyConfig) -> list[int]:
    if len(members) < 2 or consistency.variant == "vanilla" or consistency.anchors == "off":
        return []
    chosen = explicit & set(members)
    if not chosen and len(members) <= AUTO_ANCHOR_THRESHOLD:
        return []
    anchors: set[int] = set(chosen)
    for c in sorted({c for i in members for c in chars_of[i]}):
        with_c = [i for i in members if c in chars_of[i]]
        if chosen and any(i in chosen for i in with_c):
            continue  # the author's anchors show this character
        # A character no chosen anchor shows gets automatic ones, or its shots would render
        # against anchors that never show it.
        anchors.update(with_c[:ANCHORS_PER_CHARACTER])
    return sorted(anchors) if len(anchors) < len(members) else []


def _coupling(sb: Storyboard) -> tuple[list[tuple[str, ...]], list[tuple[list[int], list[int]]]]:
    """Characters per shot, and per consistency group its member and anchor shot indices."""
    consistency = sb.to_consistency_config()
    chars_of = [tuple(sb.shot_characters(shot)) for shot in sb.shots]
    explicit = {i for i, shot in enumerate(sb.shots) if getattr(shot, "anchor", False)}
    components = _groups([(shot.id, c) for shot, c in zip(sb.shots, chars_of)])
    return chars_of, [(members, _pick_anchors(members, chars_of, explicit, consistency)) for members in components]


def coupling_issues(storyboard: Storyboard) -> list[Issue]:
    """Problems with what the plan renders together: the shots of one sampling loop (a group
    rendered jointly, or a group's anchors) need the same number of steps."""
    sb = storyboard
    if sb.to_consistency_config().variant == "vanilla":
        return []
    issues: list[Issue] = []
    for members, anchors in _coupling(sb)[1]:
        together = anchors or members
        if len(together) < 2:
            continue
        first = sb.shots[together[0]]
        want = sb.effective_steps(first)
        what = "anchor shots are" if anchors else "shots that share characters are"
        for i in together[1:]:
            shot = sb.shots[i]
            got = sb.effective_steps(shot)
            if got == want:
                continue
            # Point at the `steps` that was written (the odd one out may be the first shot).
            if shot.steps is None and first.steps is not None:
                loc, this, other, a, b = ("shots", together[0], "steps"), first, shot, want, got
            else:
                loc = ("shots", i, "steps") if shot.steps is not None else ("shots", i)
                this, other, a, b = shot, first, got, want
            issues.append(Issue(loc, f"steps {a} of '{this.id}' differs from '{other.id}' ({b}): {what} "
                                     "rendered together, in one sampling loop, and need the same steps"))
    return issues


def build_plan(storyboard: Storyboard, model_fingerprint: str | None = None) -> Plan:
    """Plan a validated `storyboard.schema.Storyboard`.

    `model_fingerprint` defaults to the hash of the model's files (no model is loaded).
    """
    from motionq.api import model_fingerprint as fingerprint_of
    from motionq.api import model_settings

    sb = storyboard
    film = sb.film
    consistency = sb.to_consistency_config()
    model = sb.resolved_model()  # a folder path is relative to the storyboard, not the cwd
    fp = model_fingerprint or fingerprint_of(model)

    requests: list[ShotRequest] = []
    digests: list[str | None] = []
    chars_of, coupling = _coupling(sb)
    for i, shot in enumerate(sb.shots):
        chars = chars_of[i]
        motion = None
        digest = None
        if shot.motion is not None:
            motion = MotionSpec(clip=Path(shot.motion.clip_path), strength=float(shot.motion.strength))
            digest = _file_sha256(motion.clip)
        requests.append(ShotRequest(
            shot_id=shot.id,
            prompt=sb.resolved_prompt(shot),
            num_frames=sb.frames(shot),
            seed=sb.effective_seed(shot, i),
            steps=sb.effective_steps(shot),
            guidance=float(sb.effective_guidance(shot)),
            negative_prompt=sb.effective_negative_prompt(shot),
            subjects=tuple(sb.characters[c].prompt for c in chars),
            characters=chars,
            motion=motion,
        ))
        digests.append(digest)

    identity = [_request_identity(r, d) for r, d in zip(requests, digests)]
    base = {"v": KEY_VERSION, "model": fp}
    settings = model_settings(model)
    if settings:  # a model's own method defaults (e.g. the blocks transfer injects into)
        base["model_settings"] = settings
    shots: list[PlannedShot] = [None] * len(requests)  # type: ignore[list-item]
    groups: list[PlannedGroup] = []
    for g_index, (members, anchors) in enumerate(coupling):
        gid = f"g{g_index + 1}"
        coupled = consistency.variant != "vanilla" and len(members) > 1
        for i in members:
            key_obj = dict(base, shot=identity[i])
            if coupled:
                # Joint: every member's request shapes every member's frames (order matters:
                # it sets the batch). Anchors: anchors shape each other and the non-anchors.
                partners = anchors if anchors else members
                key_obj["consistency"] = _consistency_identity(consistency, settings)
                key_obj["partners"] = [identity[j] for j in partners]
                key_obj["anchor"] = i in anchors
            shot = sb.shots[i]
            trans_type, trans_dur = sb.transition_of(shot, i)
            shots[i] = PlannedShot(
                index=i, request=requests[i], duration=float(shot.duration),
                transition=trans_type, transition_duration=trans_dur,
                group=gid, anchor=i in anchors, key=_digest(key_obj)[:20],
                motion_digest=digests[i],
            )
        groups.append(PlannedGroup(
            id=gid,
            shot_ids=tuple(requests[i].shot_id for i in members),
            characters=tuple(dict.fromkeys(c for i in members for c in chars_of[i])),
            anchors=tuple(requests[i].shot_id for i in anchors),
            coupled=coupled,
        ))
    return Plan(
        storyboard=Path(sb.path), model=model, model_fingerprint=fp,
        consistency=consistency, fps=film.fps, size=tuple(film.size), title=film.title,
        shots=shots, groups=groups,
    )
