"""Checks for integration/03 (ML platform): no future features, the right statistics, the registry's moves."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.runtime.data import DAYS, EPOCH, EcommerceWorld
from expert.runtime.workdir import shared_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient

# --- integration/03.1: the point-in-time join --------------------------------------------------

PREFIX = "activity"
FEATURES = ("views_7d", "purchases_7d")
WINDOW = timedelta(days=7)


def feature_snapshots(world: EcommerceWorld, rng: np.random.Generator) -> pd.DataFrame:
    """Irregular activity snapshots per customer (none for some), each counting the 7 days before its feature_ts."""
    events = world.events.assign(event_ts=world.events["event_ts"].dt.tz_convert(None))
    start = pd.Timestamp(EPOCH).tz_convert(None)
    rows = []
    for customer in world.customers["customer_id"]:
        count = int(rng.integers(0, 6))
        seconds = np.unique(rng.integers(86_400, DAYS * 86_400, count))
        mine = events[events["customer_id"] == customer]
        for ts in start + pd.to_timedelta(seconds, unit="s"):
            seen = mine[(mine["event_ts"] <= ts) & (mine["event_ts"] > ts - WINDOW)]
            rows.append((int(customer), ts, int((seen["event_type"] == "view").sum()),
                         int((seen["event_type"] == "purchase").sum())))  # fmt: skip
    return pd.DataFrame(rows, columns=["customer_id", "feature_ts", *FEATURES]).astype({"feature_ts": "datetime64[us]"})


def label_spine(world: EcommerceWorld, snapshots: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One to three labels per customer at random moments; some exactly at a snapshot, some before any."""
    start = pd.Timestamp(EPOCH).tz_convert(None)
    rows = []
    for customer in world.customers["customer_id"]:
        times = set(start + pd.to_timedelta(rng.integers(0, DAYS * 86_400, int(rng.integers(1, 4))), unit="s"))
        own = snapshots.loc[snapshots["customer_id"] == customer, "feature_ts"]
        if len(own) and rng.random() < 0.3:
            times.add(own.iloc[int(rng.integers(0, len(own)))])
        rows += [(int(customer), ts, int(rng.random() < 0.3), str(rng.choice(["train", "holdout"]))) for ts in times]
    return pd.DataFrame(rows, columns=["customer_id", "label_ts", "label", "split"]).astype(
        {"label_ts": "datetime64[us]"}
    )


def as_of_truth(spine: pd.DataFrame, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Ground truth with pandas' merge_asof: the latest snapshot with feature_ts <= label_ts, per spine row."""
    truth = pd.merge_asof(
        spine.sort_values("label_ts"),
        snapshots.sort_values("feature_ts").rename(columns={"feature_ts": f"{PREFIX}_feature_ts"}),
        left_on="label_ts",
        right_on=f"{PREFIX}_feature_ts",
        by="customer_id",
        direction="backward",
        allow_exact_matches=True,
    )
    return truth.set_index(["customer_id", "label_ts"]).sort_index()


def check_as_of_join(learner: LearnerCode, ctx: CheckContext) -> str:
    """Irregular snapshots, several labels per customer, exact-instant labels: every row its latest usable snapshot."""
    as_of_join = learner.function("as_of_join", ("spine", "feature_rows", "prefix"))
    rng = np.random.default_rng(ctx.seed(1))
    world = EcommerceWorld(3_000, seed=ctx.seed())
    snapshots = feature_snapshots(world, rng)
    spine = label_spine(world, snapshots, rng)
    spark = ctx.spark
    joined = as_of_join(
        spark.createDataFrame(spine.astype({"label_ts": "datetime64[ns]"})),
        spark.createDataFrame(snapshots.astype({"feature_ts": "datetime64[ns]"})),
        PREFIX,
    )
    ts_column = f"{PREFIX}_feature_ts"
    wanted = [*spine.columns, ts_column, *FEATURES]
    absent = [c for c in wanted if c not in joined.columns]
    expect(not absent, "the training set keeps the spine's columns and adds the snapshot's",
           f"missing {', '.join(absent)}; got {', '.join(joined.columns)}")  # fmt: skip
    got = joined.select(*wanted).toPandas()
    for column in ("label_ts", ts_column):
        got[column] = pd.to_datetime(got[column]).astype("datetime64[us]")
    keys = got.groupby(["customer_id", "label_ts"]).size()
    truth = as_of_truth(spine, snapshots)
    lost = truth.index.difference(keys.index)
    expect(lost.empty, "every spine row is kept (a label without an earlier snapshot keeps NULL features)",
           f"{len(lost)} of {len(truth)} spine rows missing from the result")  # fmt: skip
    repeated = keys[keys > 1]
    expect(repeated.empty and len(got) == len(truth), "each spine row exactly once",
           f"{len(got)} rows for {len(truth)} spine rows; {len(repeated)} rows repeated "
           "(one per candidate snapshot: keep only the latest per (customer_id, label_ts))")  # fmt: skip
    got = got.set_index(["customer_id", "label_ts"]).sort_index()
    changed = int(((got["label"] != truth["label"]) | (got["split"] != truth["split"])).sum())
    expect(changed == 0, "the spine's own columns come through unchanged", f"{changed} rows changed label or split")
    leaks = got[got[ts_column] > got.index.get_level_values("label_ts")]
    expect(leaks.empty, "no feature observed after its label's timestamp",
           f"{len(leaks)} of {len(got)} rows use a snapshot taken after label_ts "
           f"(e.g. customer {leaks.index[0][0] if len(leaks) else ''}: label at "
           f"{leaks.index[0][1] if len(leaks) else ''}, snapshot at {leaks[ts_column].iloc[0] if len(leaks) else ''})")  # fmt: skip
    same_ts = (got[ts_column] == truth[ts_column]) | (got[ts_column].isna() & truth[ts_column].isna())
    same_values = np.logical_and.reduce([(got[f] == truth[f]) | (got[f].isna() & truth[f].isna()) for f in FEATURES])
    stale = got[~(same_ts & same_values)]
    example = ""
    if len(stale):
        key = stale.index[0]
        example = (f"; e.g. customer {key[0]}, label at {key[1]}: snapshot {stale.at[key, ts_column]}, "
                   f"the latest at or before it is {truth.at[key, ts_column]}")  # fmt: skip
    expect(stale.empty, "each row carries the latest snapshot at or before its label_ts (feature_ts <= label_ts)",
           f"{len(stale)} of {len(got)} rows carry another snapshot or none{example}")  # fmt: skip
    exact = int((truth[ts_column] == truth.index.get_level_values("label_ts")).sum())
    without = int(truth[ts_column].isna().sum())
    return (
        f"{len(got)} labels of {spine['customer_id'].nunique()} customers over {len(snapshots)} snapshots: each "
        f"once, with its latest usable snapshot ({exact} taken at the label's instant, {without} with none yet); "
        "0 future features"
    )


# --- integration/03.2: the A/B gate ------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """One A/B result as the gate sees it: conversions and targeted customers per arm."""

    name: str
    conversions_a: int
    n_a: int
    conversions_b: int
    n_b: int
    alpha: float

    @property
    def counts(self) -> str:
        return f"A {self.conversions_a:,}/{self.n_a:,}, B {self.conversions_b:,}/{self.n_b:,}, alpha {self.alpha}"

    @property
    def lift(self) -> float:
        return self.conversions_b / self.n_b - self.conversions_a / self.n_a


def chi_square_p(e: Experiment) -> float:
    """The truth, from an independent implementation: Pearson's chi-square on the 2x2 table (no correction)."""
    from scipy.stats import chi2_contingency

    table = [[e.conversions_a, e.n_a - e.conversions_a], [e.conversions_b, e.n_b - e.conversions_b]]
    return float(chi2_contingency(table, correction=False).pvalue)


def experiments(rng: np.random.Generator) -> list[Experiment]:
    """Results on both sides of every line the gate draws: clear wins and losses, borderline ones, unequal arms."""
    from scipy.stats import norm

    def pick(
        name: str, n_a: int, n_b: int, alpha: float, wanted: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> Experiment:
        conversions_a = int(n_a * rng.uniform(0.08, 0.2))
        b = np.arange(1, n_b)
        pooled = (conversions_a + b) / (n_a + n_b)
        lift = b / n_b - conversions_a / n_a
        p = 2 * norm.sf(np.abs(lift) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b)))
        candidates = b[wanted(p, lift)]
        return Experiment(name, conversions_a, n_a, int(rng.choice(candidates)), n_b, alpha)

    n = int(rng.integers(1_500, 3_000))
    return [
        pick("challenger clearly better", n, n, 0.05, lambda p, lift: (p < 0.001) & (lift > 0) & (lift < 0.08)),
        pick("challenger clearly worse", n, n, 0.05, lambda p, lift: (p < 0.001) & (lift < 0) & (lift > -0.08)),
        pick("better but not significant", n, n, 0.05, lambda p, lift: (p > 0.2) & (p < 0.6) & (lift > 0)),
        pick(
            "one-sided significant but two-sided not", n, n, 0.05, lambda p, lift: (p > 0.06) & (p < 0.095) & (lift > 0)
        ),
        pick("just significant", n, n, 0.05, lambda p, lift: (p > 0.03) & (p < 0.045) & (lift > 0)),
        pick(
            "unequal arms and significant", n, n * 3 // 5, 0.05, lambda p, lift: (p > 0.002) & (p < 0.02) & (lift > 0)
        ),
        pick("stricter alpha", n, n, 0.01, lambda p, lift: (p > 0.015) & (p < 0.04) & (lift > 0)),
        pick("no difference", n, n, 0.05, lambda p, lift: np.abs(lift) < 0.5 / n),
    ]


def check_ab_gate(learner: LearnerCode, ctx: CheckContext) -> str:
    """Eight experiments around the gate's lines: the p-value against chi-square, the decision against the rule."""
    ab_decision = learner.function("ab_decision", ("conversions_a", "n_a", "conversions_b", "n_b", "alpha"))
    cases = experiments(np.random.default_rng(ctx.seed()))
    decided = []
    for e in cases:
        result = ab_decision(e.conversions_a, e.n_a, e.conversions_b, e.n_b, e.alpha)
        expect(isinstance(result, tuple) and len(result) == 2, "ab_decision returns (p_value, promote)",
               f"got {result!r}")  # fmt: skip
        p_value, promote = float(result[0]), result[1]
        truth = chi_square_p(e)
        expect(abs(p_value - truth) <= 1e-9 + 1e-6 * truth,
               "the p-value is the two-sided pooled z-test's (= chi-square on the 2x2 table)",
               f"{e.name} ({e.counts}): your p = {p_value:.4g}, the test gives {truth:.4g}"
               + (" (half of it: a one-sided p)" if abs(p_value - truth / 2) <= 1e-6 * truth else ""))  # fmt: skip
        should = truth < e.alpha and e.lift > 0
        expect(bool(promote) == should, "promote only a significant improvement (p < alpha AND B converts more)",
               f"{e.name} ({e.counts}; p = {truth:.4g}, lift {e.lift:+.4f}): promote = {promote}, the gate says "
               f"{should}")  # fmt: skip
        decided.append(should)
    return (
        f"{len(cases)} experiments ({', '.join(e.name for e in cases)}): every p-value equals chi-square's, "
        f"{sum(decided)} promoted, {len(decided) - sum(decided)} kept the champion, as the rule says"
    )


# --- integration/03.3: champion and challenger on the registry ---------------------------------

CHAMPION, CHALLENGER, REPLACED_TAG = "champion", "challenger", "replaced_version"
MODEL_NAME = "purchase_propensity"


def fresh_registry(workdir: Path) -> MlflowClient:
    """An empty MLflow registry on SQLite in the check's workdir.

    MLflow migrates a new SQLite file in ~5 s; the empty, migrated file is made once per MLflow
    version (in the shared work directory) and copied. Each check gets its own file name, so no
    store MLflow cached for an earlier check's file is reused.
    """
    import mlflow
    from mlflow import MlflowClient

    from expert.ml.tracking import quiet_mlflow_logging

    quiet_mlflow_logging()
    template = shared_dir("mlflow-template") / f"empty-{mlflow.__version__}.db"
    if not template.exists():
        building = template.with_name(f"{template.stem}.{os.getpid()}.building")
        uri = f"sqlite:///{building}"
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)
        building.replace(template)
    database = workdir / f"registry-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, database)
    return MlflowClient(tracking_uri=f"sqlite:///{database}", registry_uri=f"sqlite:///{database}")


def registry_state(client: MlflowClient) -> tuple[dict[str, str], dict[str, str]]:
    """The model's aliases, and each version's replaced_version tag (where it has one)."""
    aliases = {a: str(v) for a, v in client.get_registered_model(MODEL_NAME).aliases.items()}
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    return aliases, {str(v.version): str(v.tags[REPLACED_TAG]) for v in versions if REPLACED_TAG in v.tags}


def gate_decisions(rng: np.random.Generator) -> list[bool]:
    """One decision per new challenger: a win, a loss (that version never serves), a win, then chance."""
    return [True, False, True, *(bool(b) for b in rng.random(int(rng.integers(1, 4))) < 0.5)]


def check_registry_aliases(learner: LearnerCode, ctx: CheckContext) -> str:
    """A run of gate decisions on a real registry, then rollbacks back to the first champion and one more."""
    follow_gate = learner.function("follow_gate", ("client", "model_name", "promote"))
    roll_back = learner.function("roll_back", ("client", "model_name"))
    client = fresh_registry(ctx.workdir)
    decisions = gate_decisions(np.random.default_rng(ctx.seed()))
    versions = len(decisions) + 1
    client.create_registered_model(MODEL_NAME)
    for version in range(1, versions + 1):
        client.create_model_version(MODEL_NAME, source=(ctx.workdir / f"model-v{version}").as_uri(), run_id=None)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, "1")
    aliases, tags = {CHAMPION: "1"}, {}
    for number, promote in enumerate(decisions, start=2):
        version = str(number)
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
        aliases[CHALLENGER] = version
        follow_gate(client, MODEL_NAME, promote)
        got_aliases, got_tags = registry_state(client)
        if not promote:
            expect(got_aliases == aliases and got_tags == tags, "the registry changes only when the gate promotes",
                   f"v{version} lost its experiment: aliases {got_aliases}, expected {aliases}")  # fmt: skip
            continue
        expect(got_aliases.get(CHAMPION) == version, "a winning challenger becomes champion",
               f"v{version} won its gate, but @champion is v{got_aliases.get(CHAMPION)}")  # fmt: skip
        expect(got_tags.get(version) == aliases[CHAMPION],
               f"the new champion remembers the version it replaced (tag {REPLACED_TAG})",
               f"v{version} replaced v{aliases[CHAMPION]}; its {REPLACED_TAG} tag is {got_tags.get(version)!r}")  # fmt: skip
        expect(CHALLENGER not in got_aliases, "a promoted challenger is no longer a challenger",
               f"@challenger still points at v{got_aliases.get(CHALLENGER)}")  # fmt: skip
        tags[version] = aliases[CHAMPION]
        aliases = {CHAMPION: version}
        expect(got_aliases == aliases and got_tags == tags, "a promotion moves nothing else",
               f"aliases {got_aliases}, tags {got_tags}; expected {aliases}, {tags}")  # fmt: skip
    chain = [aliases[CHAMPION]]
    while chain[-1] in tags:
        chain.append(tags[chain[-1]])
    for previous in chain[1:]:
        roll_back(client, MODEL_NAME)
        got_aliases, _ = registry_state(client)
        expect(got_aliases.get(CHAMPION) == previous, "a rollback returns @champion to the version it replaced",
               f"@champion is v{got_aliases.get(CHAMPION)}, expected v{previous} "
               f"(promotions: {' → '.join(f'v{v}' for v in reversed(chain))})")  # fmt: skip
        aliases[CHAMPION] = previous
        expect(got_aliases == aliases, "a rollback moves nothing else", f"aliases {got_aliases}, expected {aliases}")
    roll_back(client, MODEL_NAME)
    got_aliases, got_tags = registry_state(client)
    expect(got_aliases == aliases and got_tags == tags, "with nothing left to undo, a rollback changes nothing",
           f"aliases {got_aliases}, expected {aliases}")  # fmt: skip
    count = len(client.search_model_versions(f"name = '{MODEL_NAME}'"))
    expect(count == versions, "no version is created or deleted", f"{count} versions, {versions} registered")
    promoted = sum(decisions)
    return (
        f"{len(decisions)} gate decisions on {versions} registered versions: {promoted} promotions, each remembered "
        f"and its challenger retired, {len(decisions) - promoted} losses left untouched; rolled back "
        f"{' → '.join(f'v{v}' for v in chain)}, then a no-op"
    )


# --- integration/03.4: drift (PSI) -------------------------------------------------------------

PSI_FLOOR = 1e-4
PSI_ALARM = 0.25
PSI_STABLE = 0.1


def psi_from_shares(reference: np.ndarray, current: np.ndarray) -> float:
    reference, current = np.clip(reference, PSI_FLOOR, None), np.clip(current, PSI_FLOOR, None)
    return float(np.sum((current - reference) * np.log(current / reference)))


def decile_case(rng: np.random.Generator, *, empty_bin: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Distinct reference values: each decile holds exactly a tenth of them, so the expected PSI follows from counts."""
    reference = rng.lognormal(3.0, 1.0, 1_000)
    blocks = np.sort(reference).reshape(10, 100)
    counts = rng.integers(20, 200, 10)
    if empty_bin:
        counts[int(rng.integers(0, 10))] = 0
    current = np.concatenate([rng.choice(block, int(c)) for block, c in zip(blocks, counts, strict=True)])
    return reference, rng.permutation(current), psi_from_shares(np.full(10, 0.1), counts / counts.sum())


def views_7d(events: pd.DataFrame, customers: pd.Series, first_day: int) -> np.ndarray:
    """Views per customer in the 7 days from `first_day` (0 for customers without any): a count feature."""
    start = pd.Timestamp(EPOCH) + timedelta(days=first_day)
    window = events[
        (events["event_ts"] >= start) & (events["event_ts"] < start + WINDOW) & (events["event_type"] == "view")
    ]
    return window.groupby("customer_id").size().reindex(customers, fill_value=0).to_numpy().astype(float)


def reference_psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """The expected PSI, written apart from numpy's searchsorted: a value's bin is the number of edges at or below it."""
    edges = np.array(sorted(set(np.quantile(reference, np.arange(1, bins) / bins))))

    def shares(sample: np.ndarray) -> np.ndarray:
        bins_of = (sample[:, None] >= edges[None, :]).sum(axis=1)
        return np.bincount(bins_of, minlength=len(edges) + 1) / len(sample)

    return psi_from_shares(shares(reference), shares(current))


def same_psi(got: float, want: float) -> bool:
    return bool(np.isfinite(got)) and abs(got - want) <= 1e-6 * max(1.0, abs(want))


def check_psi_drift(learner: LearnerCode, ctx: CheckContext) -> str:
    """Exact deciles, an empty bin, a count feature full of zeros, then noise versus a real campaign shift."""
    from expert.ml.campaign import campaign_traffic

    psi = learner.function("psi", ("reference", "current", "bins"))
    rng = np.random.default_rng(ctx.seed(1))
    reference, current, want = decile_case(rng, empty_bin=False)
    got = float(psi(reference, current, 10))
    expect(same_psi(got, want), "PSI bins at the reference's deciles",
           f"{len(current)} values spread unevenly over the reference's 10 deciles: PSI {want:.6f}, yours {got:.6g}")  # fmt: skip
    reference, current, want = decile_case(rng, empty_bin=True)
    got = float(psi(reference, current, 10))
    expect(bool(np.isfinite(got)), "PSI stays finite when a bin is empty (its share floored at 1e-4)",
           f"one decile received no current value: yours is {got}")  # fmt: skip
    expect(same_psi(got, want), "an empty bin counts as a share of 1e-4", f"PSI {want:.6f}, yours {got:.6g}")

    world = EcommerceWorld(24_000, seed=ctx.seed())
    customers = world.customers["customer_id"]
    events = world.events
    campaign = campaign_traffic(world, start_day=14, share=0.4, views_per_day=3.0)
    shifted = pd.concat([events, campaign], ignore_index=True)
    train, later, during = (
        views_7d(events, customers, 0),
        views_7d(events, customers, 7),
        views_7d(shifted, customers, 14),
    )
    zeros = float((train == 0).mean())
    scores = {}
    for name, sample in (("a later week, no campaign", later), ("the campaign week", during)):
        want, got = reference_psi(train, sample, 10), float(psi(train, sample, 10))
        expect(same_psi(got, want), "a count feature full of ties: a value equal to an edge falls in the bin above it",
               f"views_7d ({zeros:.0%} zeros in training), {name}: PSI {want:.6f}, yours {got:.6g}")  # fmt: skip
        scores[name] = got
    quiet, alarm = scores["a later week, no campaign"], scores["the campaign week"]
    expect(quiet < PSI_STABLE, "no alarm on noise: a later week of the same traffic reads as stable",
           f"PSI {quiet:.3f} ≥ {PSI_STABLE}")  # fmt: skip
    expect(alarm >= PSI_ALARM, "the campaign's shift fires the alarm that triggers retraining",
           f"PSI {alarm:.3f} < {PSI_ALARM}")  # fmt: skip
    return (
        f"deciles exact, an empty bin floored, views_7d of {len(customers)} customers ({zeros:.0%} zeros, ties on "
        f"the edges) binned exactly; a later week PSI {quiet:.3f} (stable), the campaign week PSI {alarm:.3f} ≥ {PSI_ALARM}: retrain"
    )
