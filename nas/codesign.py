"""The co-design table, in the form of MCUNet's Table 2: for each SRAM budget, the uniformly scaled
network (a), random search (b) and evolution (c), each deployed and measured, over several seeds of
`nas run`. A difference of mean accuracy that is not larger than the seed spread (the larger range
over seeds of the two rows) is called inconclusive; so is any difference seen in one seed."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from hil.errors import LabError

# Role in the table, its label, and how a `nas run` record names it.
ROLES = (("uniform", "(a) uniform (k3 e6, full depth, from scratch)"),
         ("random", "(b) random search"),
         ("evolution", "(c) evolution"))
LATENCY_TOLERANCE = 0.05  # measured against predicted, as `nas run` checks its winner
# What every record of one table must share, and how a record says it.
SHARED = {"board": lambda r: r["board"], "dataset": lambda r: r["dataset"], "space": lambda r: r["space"],
          "work budget": lambda r: r["work_budget"]["name"], "flash budget": lambda r: r["budget"]["flash_bytes"],
          "latency budget": lambda r: r["budget"]["latency"], "latency unit": lambda r: r["latency_table"]["unit"]}


@dataclass(frozen=True)
class Deployed:
    """One deployed network of one run, as the run measured it."""

    architecture: str
    int8_accuracy: float
    peak_sram_bytes: int
    flash_bytes: int
    latency: float
    latency_unit: str
    latency_ratio: float | None  # measured / predicted
    matches_reference: bool

    @classmethod
    def of(cls, entry: dict) -> Deployed:
        m = entry["measured"]
        return cls(entry["architecture"], entry["int8_accuracy"], m["peak_sram_bytes"], m["flash_bytes"],
                   m["latency"], m["latency_unit"], entry.get("latency_ratio"), bool(entry["matches_reference"]))

    def failures(self, sram_bytes: int, flash_bytes: int) -> list[str]:
        """What this network breaks of the issue's checks on every deployed winner."""
        broken = []
        if self.peak_sram_bytes > sram_bytes:
            broken.append(f"peak SRAM {self.peak_sram_bytes:,} B over {sram_bytes:,} B")
        if self.flash_bytes > flash_bytes:
            broken.append(f"flash {self.flash_bytes:,} B over {flash_bytes:,} B")
        if self.latency_ratio is not None and abs(self.latency_ratio - 1) > LATENCY_TOLERANCE:
            broken.append(f"latency {(self.latency_ratio - 1) * 100:+.1f} % from its prediction")
        if not self.matches_reference:
            broken.append("not bit-exact with TFLM")
        return broken


def deployed_of(record: dict) -> dict[str, Deployed]:
    """The three networks of a `nas run` record, by role."""
    found = {"evolution": Deployed.of(record["winner"])}
    for entry in record["baselines"]:
        role = "random" if entry["name"].startswith("random") else "uniform" if entry["name"].startswith("uniform") \
            else None
        if role is not None:
            found[role] = Deployed.of(entry)
    missing = [role for role, _ in ROLES if role not in found]
    if missing:
        raise LabError(f"the run record of seed {record.get('seed')} has no {', '.join(missing)} network")
    return found


@dataclass(frozen=True)
class Row:
    """One network of the table (a role) at one SRAM budget, over the seeds."""

    role: str
    label: str
    by_seed: dict[int, Deployed]

    def accuracies(self) -> list[float]:
        return [self.by_seed[s].int8_accuracy for s in sorted(self.by_seed)]

    @property
    def mean_accuracy(self) -> float:
        return mean(self.accuracies())

    @property
    def spread(self) -> float:
        """Max minus min accuracy over the seeds (0 with one seed)."""
        return max(self.accuracies()) - min(self.accuracies())


@dataclass(frozen=True)
class Comparison:
    """Row `first` against row `second` at one SRAM budget."""

    first: str
    second: str
    difference: float  # mean accuracy of first minus second
    spread: float  # the larger of the two rows' spreads
    seeds: int
    first_ahead_in: int  # seeds where first's accuracy is above second's

    @property
    def conclusive(self) -> bool:
        return self.seeds >= 2 and abs(self.difference) > self.spread

    def verdict(self) -> str:
        points = f"{self.difference * 100:+.2f} points, seed spread {self.spread * 100:.2f}"
        if self.seeds < 2:
            return f"{self.first} vs {self.second}: {points}; one seed, so inconclusive"
        if not self.conclusive:
            return (f"{self.first} vs {self.second}: {points}, ahead in {self.first_ahead_in} of {self.seeds} "
                    "seeds; within the seed spread, so inconclusive")
        leader = self.first if self.difference > 0 else self.second
        return f"{self.first} vs {self.second}: {points}; {leader} is ahead beyond the seed spread"

    def to_json(self) -> dict:
        return {"first": self.first, "second": self.second, "difference": round(self.difference, 6),
                "spread": round(self.spread, 6), "seeds": self.seeds, "first_ahead_in": self.first_ahead_in,
                "conclusive": self.conclusive, "verdict": self.verdict()}


def compare(first: Row, second: Row) -> Comparison:
    seeds = sorted(set(first.by_seed) & set(second.by_seed))
    ahead = sum(first.by_seed[s].int8_accuracy > second.by_seed[s].int8_accuracy for s in seeds)
    return Comparison(first.role, second.role, first.mean_accuracy - second.mean_accuracy,
                      max(first.spread, second.spread), len(seeds), ahead)


@dataclass(frozen=True)
class BudgetTable:
    """The three rows and their comparisons at one SRAM budget."""

    sram_bytes: int
    seeds: list[int]
    rows: list[Row]

    def row(self, role: str) -> Row:
        return next(r for r in self.rows if r.role == role)

    def comparisons(self) -> list[Comparison]:
        return [compare(self.row("evolution"), self.row(other)) for other in ("random", "uniform")]

    def failures(self, flash_bytes: int) -> list[str]:
        return [f"{row.role}, seed {seed}: {problem}" for row in self.rows for seed, d in sorted(row.by_seed.items())
                for problem in d.failures(self.sram_bytes, flash_bytes)]


@dataclass(frozen=True)
class CodesignTable:
    shared: dict[str, object]
    budgets: list[BudgetTable]

    @property
    def flash_bytes(self) -> int:
        return self.shared["flash budget"]

    def failures(self) -> list[str]:
        return [f"SRAM {b.sram_bytes:,} B, {line}" for b in self.budgets for line in b.failures(self.flash_bytes)]

    def markdown(self) -> str:
        s = self.shared
        latency = s["latency budget"]
        lines = [f"{s['board']}, {s['space']} on {s['dataset']}, `--budget {s['work budget']}`; flash "
                 f"{self.flash_bytes:,} B; latency "
                 + ("no budget" if latency is None else f"at most {latency:,.0f} {s['latency unit']}") + "."]
        for budget in self.budgets:
            seeds = ", ".join(str(x) for x in budget.seeds)
            lines += ["", f"| SRAM {budget.sram_bytes:,} B, seeds {seeds} | int8 test accuracy per seed | mean | "
                          f"spread | peak SRAM, B (max) | latency, {s['latency unit']} (mean) | flash, B (max) |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            for row in budget.rows:
                d = list(row.by_seed.values())
                per_seed = " / ".join(f"{a * 100:.2f}" for a in row.accuracies())
                lines.append(f"| {row.label} | {per_seed} | {row.mean_accuracy * 100:.2f} % | "
                             f"{row.spread * 100:.2f} | {max(x.peak_sram_bytes for x in d):,} | "
                             f"{mean(x.latency for x in d):,.0f} | {max(x.flash_bytes for x in d):,} |")
            lines += [""] + [f"- {c.verdict()}" for c in budget.comparisons()]
        failures = self.failures()
        lines += ["", "Every deployed network is within its SRAM and flash budgets, within "
                  f"{LATENCY_TOLERANCE:.0%} of its predicted latency, and bit-exact with TFLM."] if not failures \
            else ["", "Checks that failed:"] + [f"- {line}" for line in failures]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"shared": self.shared, "checks_failed": self.failures(), "budgets": [
            {"sram_bytes": b.sram_bytes, "seeds": b.seeds,
             "rows": [{"role": r.role, "label": r.label, "mean_accuracy": round(r.mean_accuracy, 6),
                       "spread": round(r.spread, 6),
                       "by_seed": {str(seed): vars(d) for seed, d in sorted(r.by_seed.items())}} for r in b.rows],
             "comparisons": [c.to_json() for c in b.comparisons()]} for b in self.budgets]}


def codesign_table(records: dict[tuple[int, int], dict]) -> CodesignTable:
    """The table of `nas run` records keyed by (SRAM budget in bytes, seed). Records that do not
    share board, data, space, work budget, flash and latency budgets are refused, naming which."""
    if not records:
        raise LabError("no run records to make a co-design table of")
    keys = sorted(records)
    first = records[keys[0]]
    shared = {name: read(first) for name, read in SHARED.items()}
    for key in keys:
        record = records[key]
        if record["budget"]["sram_bytes"] != key[0] or record["seed"] != key[1]:
            raise LabError(f"the record filed as SRAM {key[0]:,} B seed {key[1]} is of SRAM "
                           f"{record['budget']['sram_bytes']:,} B seed {record['seed']}")
        for name, read in SHARED.items():
            if read(record) != shared[name]:
                raise LabError(f"the runs differ in their {name}: {read(record)!r} (SRAM {key[0]:,} B, seed {key[1]}) "
                               f"against {shared[name]!r} (SRAM {keys[0][0]:,} B, seed {keys[0][1]}); a table "
                               "compares runs made alike")
    budgets = []
    for sram in sorted({k[0] for k in keys}, reverse=True):
        seeds = sorted(k[1] for k in keys if k[0] == sram)
        networks = {seed: deployed_of(records[(sram, seed)]) for seed in seeds}
        rows = [Row(role, label, {seed: networks[seed][role] for seed in seeds}) for role, label in ROLES]
        budgets.append(BudgetTable(sram, seeds, rows))
    return CodesignTable(shared, budgets)
