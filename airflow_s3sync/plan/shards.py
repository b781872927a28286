"""Split a prefix's keyspace into key ranges holding roughly equal numbers of keys, cheaply.

S3 cannot count the keys between two points without listing them, so the planner samples: each
probe is one ListObjectsV2 page (up to 1,000 keys) after a chosen ``StartAfter``. The first page
starts at the first key; if it is the only page, the split is exact. Otherwise the keyspace is a
row of *segments* — the keys a page returned, known exactly — and *gaps* between them, whose
counts are estimated from the density of the neighbouring pages in a numeric picture of the keys
(each character a digit, over the alphabet seen so far). Each next probe goes to the middle of
the gap with the largest estimate; a probe past the last key returns nothing, which bounds the
keyspace from above (found first, by a binary search over the prefixes of the last key seen).
Where the estimates are small enough for the probes left, the gaps are listed outright instead:
exact, and no dearer. Boundaries are placed where the estimated cumulative count crosses each
``total * j / shards`` — on a real key inside a segment, or on a string interpolated inside a
gap — then probed where they were interpolated and placed again with what those probes saw;
last, an interpolated boundary moves to the first key after it, so every boundary is a real key
and no range is empty, as far as the probes left can check. All within ``max_probes``.

However good the estimates, the ranges are always exact as a partition: the first starts at the
beginning (``None``), the last ends at the end (``None``), each range's ``end`` is the next one's
``start_after``, and boundaries strictly increase. Estimates only decide how even they are.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

#: A probe: the keys after ``start_after`` (``None``: from the first key) in order, one page of
#: them, and whether more follow.
Probe = Callable[[str | None], tuple[list[str], bool]]

#: Digits of a key's numeric picture after the common prefix of the whole keyspace.
_DIGITS = 24
#: The largest code point a probe string may use (U+10FFFE/F are noncharacters; surrogates skipped).
_MAX_CHAR = 0x10FFFD


def default_max_probes(shards: int) -> int:
    """The probes a split into ``shards`` ranges may send by default: a few per boundary."""
    return min(8 + 4 * shards, 400)


def listing_probes(ranges: int) -> int:
    """The probes a sync may send to split its own listing into ``ranges`` parallel ranges:
    fewer than :func:`default_max_probes` (each one is a page the listing does not use)."""
    return 2 + ranges


@dataclass
class _Segment:
    """What one probe returned: the keys after ``after``; ``complete`` when nothing follows them."""

    after: str | None
    keys: list[str]
    complete: bool


def plan_key_ranges(probe: Probe, shards: int, *, max_probes: int | None = None) -> list[list[str | None]]:
    """At most ``shards`` ``[start_after, end]`` ranges that partition the keyspace.

    :param probe: lists one page after a key (see :data:`Probe`).
    :param shards: how many ranges are wanted (at least 1).
    :param max_probes: pages the planner may list (at least 1); default
        :func:`default_max_probes`.
    """
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"shards must be a positive integer, got {shards!r}")
    budget = default_max_probes(shards) if max_probes is None else max_probes
    if budget < 1:
        raise ValueError(f"max_probes must be at least 1, got {max_probes!r}")
    if shards == 1:
        return [[None, None]]
    sampler = _Sampler(probe)
    sampler.probe(None)
    sampler.bound_from_above(budget)
    # Some probes are kept to look where the first estimate puts the boundaries, and to check
    # that no range of the last one is empty.
    sampling = budget - min(2 * (shards - 1), budget // 3)
    while sampler.probes < sampling and sampler.probe_largest_gap(sampling - sampler.probes):
        pass
    scale = _Scale(sampler)
    boundaries = _boundaries(sampler.pieces(scale), shards, scale)
    for boundary in boundaries:
        if sampler.probes >= budget - (shards - 1):
            break
        if boundary not in sampler.known:  # interpolated in a gap: see what is really there
            sampler.probe(boundary)
    scale = _Scale(sampler)
    boundaries = _boundaries(sampler.pieces(scale), shards, scale)
    return _ranges(_settle(boundaries, sampler, budget))


def _settle(boundaries: list[str], sampler: _Sampler, budget: int) -> list[str]:
    """Real keys for boundaries, and no empty range: an interpolated boundary moves to the first
    key after it (the range it ends then holds at least that key); one that would repeat the
    previous boundary is dropped (its range would be empty), and so are boundaries past the
    last key. A boundary the probes left cannot check stays as it is."""
    settled: list[str] = []
    for boundary in boundaries:
        first = sampler.first_key_after(boundary, budget) if boundary not in sampler.known else _UNKNOWN
        if first is None:
            break  # no key after it: every later range would be empty
        if isinstance(first, str):
            boundary = first
        if not settled or boundary > settled[-1]:
            settled.append(boundary)
    while settled and sampler.first_key_after(settled[-1], budget) is None:
        settled.pop()  # the last range, (boundary, end], would be empty
    return settled


_UNKNOWN = object()


class _Sampler:
    """The segments probed so far, in key order, and the gaps between them."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self.probes = 0
        self.segments: list[_Segment] = []
        self.chars: list[str] = []  # the alphabet seen, sorted
        self._unsplittable: set[str] = set()  # gaps (by their low key) no string can split
        self.page_size = 1  # keys in a full page, as the server answers
        self.known: set[str] = set()  # every key a probe returned

    def probe(self, after: str | None) -> None:
        """List one page after ``after`` and file it in key order."""
        keys, more = self._probe(after)
        self.probes += 1
        if more:
            self.page_size = max(self.page_size, len(keys))
        keys = [key for key in keys if after is None or key > after]
        position = bisect.bisect_left([_order(s.after) for s in self.segments], _order(after))
        self.segments.insert(position, _Segment(after, keys, complete=not more))
        self.known.update(keys)
        seen = set(self.chars)
        for key in keys:  # the keys' alphabet only: probe strings carry the character above it
            seen.update(key)
        self.chars = sorted(seen)

    def bound_from_above(self, budget: int) -> None:
        """Find how the keyspace ends, in a few probes: the shortest prefix ``L[:k]`` of the last
        key seen such that no key sorts after every key that starts with it (a binary search
        over ``k``; "after every key with prefix P" is ``P`` + a character above the alphabet).
        The probes that find keys are samples too."""
        first = self.segments[0]
        if first.complete or not first.keys or self.probes >= budget:
            return
        last = first.keys[-1]
        top = _top_char(self.chars)
        if not self._empty_after(top):
            return  # keys above the alphabet: no bound from here
        low, high = 0, len(last)  # nothing after last[:low] + top; assumed: something after last[:high] + top
        while high - low > 1 and self.probes < budget:
            middle = (low + high) // 2
            if self._empty_after(last[:middle] + top):
                low = middle
            else:
                high = middle

    def _empty_after(self, point: str) -> bool:
        self.probe(point)
        segment = next(segment for segment in self.segments if segment.after == point)
        return not segment.keys

    def first_key_after(self, point: str, budget: int) -> str | object | None:
        """The first key after ``point`` from a probe there (sent now if none was and the
        ``budget`` allows; else ``_UNKNOWN``); ``None`` when no key follows it."""
        for segment in self.segments:  # a page that listed past the point already tells
            if _order(segment.after) <= _order(point) and (
                segment.complete or (segment.keys and point < segment.keys[-1])
            ):
                following = [key for key in segment.keys if key > point]
                return following[0] if following else None
        if self.probes >= budget:
            return _UNKNOWN
        self.probe(point)
        segment = next(segment for segment in self.segments if segment.after == point)
        return segment.keys[0] if segment.keys else None

    def gaps(self) -> list[tuple[int, str, str | None]]:
        """``(segment index, low, high)``: keys after ``low`` up to ``high`` (``None``: no probe
        bounds it yet) that no probe has seen."""
        found = []
        for index, segment in enumerate(self.segments):
            if segment.complete or not segment.keys:
                continue
            following = self.segments[index + 1].after if index + 1 < len(self.segments) else None
            if following is not None and segment.keys[-1] >= following:
                continue  # the next probe starts inside this page: nothing unseen between them
            found.append((index, segment.keys[-1], following))
        return found

    def probe_largest_gap(self, remaining: int) -> bool:
        """Probe the middle of the gap estimated to hold the most keys; False when no gap is left
        that a probe can split. When the ``remaining`` probes can list every gap page by page,
        list instead: exact, and no dearer."""
        scale = _Scale(self)
        gaps = [gap for gap in self.gaps() if gap[1] not in self._unsplittable]
        unseen = sum(scale.estimate(gap) for gap in gaps)
        if gaps and unseen <= 0.8 * remaining * self.page_size:
            self.probe(gaps[0][1])
            return True
        while gaps:
            best = max(gaps, key=scale.estimate)
            _, low, high = best
            if scale.estimate(best) <= self.page_size:
                self.probe(low)  # about one page: list it, exactly, rather than split it
                return True
            point = _between(low, high if high is not None else scale.top, 0.5, self.chars, scale.top_char)
            if point is not None:
                self.probe(point)
                return True
            self._unsplittable.add(low)
            gaps.remove(best)
        return False

    def pieces(self, scale: _Scale) -> list[tuple[str, str | None, float]]:
        """The keyspace in order: ``(key, None, 1)`` for each key seen and ``(low, high,
        estimate)`` for each unseen stretch."""
        gap_after = {index: (low, high) for index, low, high in self.gaps()}
        pieces: list[tuple[str, str | None, float]] = []
        for index, segment in enumerate(self.segments):
            following = self.segments[index + 1].after if index + 1 < len(self.segments) else None
            for key in segment.keys:
                if following is not None and key > following:
                    break
                pieces.append((key, None, 1.0))
            if index in gap_after:
                low, high = gap_after[index]
                estimate = scale.estimate((index, low, high))
                if estimate > 0:
                    pieces.append((low, high if high is not None else scale.top, estimate))
        return pieces


class _Scale:
    """The numeric picture of keys: ``_DIGITS`` digits over the alphabet seen, after the
    keyspace's common prefix; and the density of each page in it."""

    def __init__(self, sampler: _Sampler) -> None:
        self.sampler = sampler
        self.chars = sampler.chars
        self.base = len(self.chars) + 2  # digit 0: the string ended; len + 1: above the alphabet
        self.top_char = _top_char(self.chars)
        # The smallest probe point past the last key bounds the keyspace; else the top character.
        past_end = [s.after for s in sampler.segments if s.complete and not s.keys and s.after is not None]
        self.top = min(past_end) if past_end else self.top_char
        first = next((segment.keys[0] for segment in sampler.segments if segment.keys), "")
        # Every key lies between the first and the top, so all of them share this prefix.
        self.common = _common_prefix(first, self.top)
        densities = [self._density(segment.keys) for segment in sampler.segments if len(segment.keys) >= 2]
        self.mean_density = sum(densities) / len(densities) if densities else 1.0

    def value(self, key: str) -> int:
        """The key as an integer (order-preserving, to ``_DIGITS`` digits after the common prefix)."""
        rest = key[len(self.common) :] if key.startswith(self.common) else key
        number = 0
        for position in range(_DIGITS):
            number = number * self.base + (_digit(rest[position], self.chars) if position < len(rest) else 0)
        return number

    def _density(self, keys: list[str]) -> float:
        return (len(keys) - 1) / max(self.value(keys[-1]) - self.value(keys[0]), 1)

    def estimate(self, gap: tuple[int, str, str | None]) -> float:
        """The keys a gap is estimated to hold: its width times its neighbouring pages' density."""
        index, low, high = gap
        width = self.value(high if high is not None else self.top) - self.value(low)
        segments = self.sampler.segments
        near = [
            self._density(segments[i].keys)
            for i in (index, index + 1)
            if i < len(segments) and len(segments[i].keys) >= 2
        ]
        density = sum(near) / len(near) if near else self.mean_density
        return max(width, 0) * density


def _top_char(chars: list[str]) -> str:
    """A character above every one seen: DEL for ASCII keys (above every printable one)."""
    code = max(0x7F, ord(chars[-1]) + 1 if chars else 0)
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return chr(min(code, _MAX_CHAR))


def _common_prefix(first: str, second: str) -> str:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return first[:length]


def _digit(char: str, chars: list[str]) -> int:
    position = bisect.bisect_left(chars, char)
    if position < len(chars) and chars[position] == char:
        return position + 1
    return min(position + 1, len(chars) + 1)


def _order(after: str | None) -> tuple[int, str]:
    return (0, "") if after is None else (1, after)


def _between(low: str, high: str, fraction: float, chars: list[str], top: str) -> str | None:
    """A string strictly between ``low`` and ``high``, about ``fraction`` of the way, written
    with the alphabet (and ``top`` above it); ``None`` if the picture cannot separate them."""
    common = _common_prefix(low, high)
    base = len(chars) + 2
    digits = 8

    def value(text: str) -> int:
        rest = text[len(common) :]
        number = 0
        for position in range(digits):
            number = number * base + (_digit(rest[position], chars) if position < len(rest) else 0)
        return number

    low_value, high_value = value(low), value(high)
    target = low_value + int((high_value - low_value) * fraction)
    for candidate_value in (target, (low_value + high_value) // 2, low_value + 1):
        text = _string(candidate_value, digits, base, chars, top)
        candidate = common + text
        if low < candidate < high:
            return candidate
    return None


def _string(number: int, digits: int, base: int, chars: list[str], top: str) -> str:
    out = []
    for position in range(digits - 1, -1, -1):
        digit = (number // base**position) % base
        if digit == 0:
            break
        out.append(chars[digit - 1] if digit <= len(chars) else top)
    return "".join(out)


def _boundaries(pieces: list[tuple[str, str | None, float]], shards: int, scale: _Scale) -> list[str]:
    """Keys where the cumulative count crosses ``total * j / shards``, strictly increasing."""
    total = sum(weight for _, _, weight in pieces)
    targets = [total * j / shards for j in range(1, shards)]
    boundaries: list[str] = []
    cumulative, target = 0.0, 0
    for low, high, weight in pieces:
        while target < len(targets) and cumulative + weight >= targets[target]:
            boundary = low
            if high is not None:  # inside a gap: interpolate
                fraction = (targets[target] - cumulative) / weight
                boundary = _between(low, high, fraction, scale.chars, scale.top_char) or low
            if not boundaries or boundary > boundaries[-1]:
                boundaries.append(boundary)
            target += 1
        cumulative += weight
    return boundaries


def _ranges(boundaries: list[str]) -> list[list[str | None]]:
    points: list[str | None] = [None, *boundaries, None]
    return [[points[i], points[i + 1]] for i in range(len(points) - 1)]
