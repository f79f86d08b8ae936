"""MovieLens-shaped synthetic data with a planted preference signal, for scale tests and CI.

Ratings come from latent user/item factors, a demographic x genre effect and item quality, so a
model can learn more than popularity; `planted_signal` exposes the truth so tests can check it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from inttower.config import SyntheticParams
from inttower.data.tables import MOVIELENS_GENRES, RawTables, SourceRef, conform

START = 883_612_800  # 1998-01-01T00:00:00Z
END = 978_307_199  # 2000-12-31T23:59:59Z
DAY = 86_400

AGE_BUCKETS = np.array([1, 18, 25, 35, 45, 50, 56], dtype=np.int32)  # ml-1m age codes
AGE_SHARES = np.array([0.04, 0.18, 0.35, 0.20, 0.09, 0.08, 0.06])
GENDERS = ("M", "F")
GENDER_SHARES = np.array([0.71, 0.29])
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)
# How often each MovieLens genre is drawn (Drama and Comedy dominate, as in ml-1m).
GENRE_WEIGHTS = np.array(
    [503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106, 471, 276, 492, 143, 68],
    dtype=np.float64,
)
# Rating shares of ml-1m: 1..5 stars.
RATING_SHARES = np.array([0.056, 0.108, 0.261, 0.349, 0.226])

COHORTS = 12  # users arrive in waves, so a chronological split meets many new users
FACTORS = 8
CHUNK = 2_000_000  # events scored per batch: bounds the memory of the factor gathers
NOISE_SD = 0.8  # the rating noise: score = the planted mean + N(0, NOISE_SD²)
# The oracle table: what the generator knew of each event, kept beside the data for evaluation.
ORACLE_SCHEMA = {
    "user_id": pl.Int64,
    "item_id": pl.Int64,
    "timestamp": pl.Int64,
    "score_mean": pl.Float64,
    **{f"cut_{index}": pl.Float64 for index in range(1, len(RATING_SHARES))},
    "noise_sd": pl.Float64,
}


@dataclass(frozen=True)
class PlantedSignal:
    """The ground truth behind a synthetic dataset (0-based rows: user id - 1, item id - 1)."""

    gender: np.ndarray  # (U,) index into GENDERS
    age: np.ndarray  # (U,) index into AGE_BUCKETS
    occupation: np.ndarray  # (U,) index into OCCUPATIONS
    arrival: np.ndarray  # (U,) unix seconds the user joined
    activity: np.ndarray  # (U,) relative event rate
    user_factors: np.ndarray  # (U, FACTORS)
    user_bias: np.ndarray  # (U,)
    item_genres: np.ndarray  # (I, genres) bool, 1-3 per item
    item_factors: np.ndarray  # (I, FACTORS)
    item_quality: np.ndarray  # (I,)
    popularity: np.ndarray  # (I,) relative draw rate, Zipf-like
    year: np.ndarray  # (I,) release year
    demographic_genre: np.ndarray  # (genders * ages, genres) additive preference
    item_demographic: np.ndarray  # (I, genders * ages) mean effect over each item's genres

    @property
    def user_group(self) -> np.ndarray:
        return self.gender * len(AGE_BUCKETS) + self.age


def planted_signal(params: SyntheticParams, seed: int) -> PlantedSignal:
    """Users, items and the preference structure for `seed`; `generate` samples events from it."""
    users = np.random.default_rng([seed, 0])
    items = np.random.default_rng([seed, 1])
    n_users, n_items, n_genres = params.n_users, params.n_items, len(MOVIELENS_GENRES)

    gender = users.choice(len(GENDERS), size=n_users, p=GENDER_SHARES)
    age = users.choice(len(AGE_BUCKETS), size=n_users, p=AGE_SHARES)
    occupation = users.choice(
        len(OCCUPATIONS), size=n_users, p=users.dirichlet(np.full(len(OCCUPATIONS), 2.0))
    )
    cohort_start = np.linspace(START, END - 120 * DAY, COHORTS)
    cohort = users.choice(COHORTS, size=n_users, p=users.dirichlet(np.full(COHORTS, 3.0)))
    arrival = (cohort_start[cohort] + users.uniform(0, 14 * DAY, n_users)).astype(np.int64)
    # Heavy-tailed activity, capped so nobody is expected to rate over a third of the catalogue.
    activity = users.lognormal(0.0, 1.0, n_users)
    for _ in range(3):
        cap = activity.sum() * n_items / (3.0 * params.n_events)
        activity = np.minimum(activity, cap)
    user_factors = users.normal(0.0, 1.0 / np.sqrt(FACTORS), (n_users, FACTORS)).astype(np.float32)
    user_bias = users.normal(0.0, 0.3, n_users).astype(np.float32)

    # 1-3 distinct genres per item by Gumbel top-k over the genre weights.
    genre_count = items.choice([1, 2, 3], size=n_items, p=[0.45, 0.35, 0.20])
    keys = np.log(GENRE_WEIGHTS) + items.gumbel(size=(n_items, n_genres))
    ranks = np.argsort(np.argsort(-keys, axis=1), axis=1)
    item_genres = ranks < genre_count[:, None]
    item_factors = items.normal(0.0, 1.0, (n_items, FACTORS)).astype(np.float32)
    item_quality = items.normal(0.0, 1.0, n_items).astype(np.float32)
    # Zipf over a random rank order (ids carry no popularity), mildly favouring good items.
    rank = items.permutation(n_items)
    popularity = (rank + 10.0) ** -1.0 * np.exp(0.3 * item_quality)
    year = np.clip(2000 - np.floor(items.exponential(9.0, n_items)), 1919, 2000).astype(np.int32)

    effect_gender = items.normal(0.0, 0.6, (len(GENDERS), n_genres))
    effect_age = items.normal(0.0, 0.4, (len(AGE_BUCKETS), n_genres))
    demographic_genre = (effect_gender[:, None, :] + effect_age[None, :, :]).reshape(-1, n_genres)
    item_demographic = (item_genres @ demographic_genre.T) / genre_count[:, None]

    return PlantedSignal(
        gender=gender,
        age=age,
        occupation=occupation,
        arrival=arrival,
        activity=activity,
        user_factors=user_factors,
        user_bias=user_bias,
        item_genres=item_genres,
        item_factors=item_factors,
        item_quality=item_quality,
        popularity=popularity,
        year=year,
        demographic_genre=demographic_genre,
        item_demographic=item_demographic.astype(np.float32),
    )


def _counts(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """How often each index comes up in `size` draws proportional to `weights`. (Multinomial
    counts have the law of i.i.d. draws and cost nothing next to a binary search per draw.)"""
    return rng.multinomial(size, weights / weights.sum())


def _pairs(signal: PlantedSignal, n_events: int, rng: np.random.Generator) -> np.ndarray:
    """`n_events` distinct (user, item) pairs as keys user * I + item, like MovieLens (a user
    rates a movie once): draw, drop repeats, top up the shortfall (usually once)."""
    n_users, n_items = len(signal.activity), len(signal.popularity)
    target = min(n_events, n_users * n_items)
    keys = np.empty(0, dtype=np.int64)
    before, growth = 0, 1.15  # a little extra: some draws repeat earlier ones
    for _ in range(8):
        shortfall = target - len(keys)
        if shortfall <= 0:
            break
        draws = int(shortfall * growth) + 64
        # Users come grouped (as in ratings.dat); shuffling the items pairs them at random.
        users = np.repeat(np.arange(n_users, dtype=np.int64), _counts(rng, signal.activity, draws))
        items = np.repeat(
            np.arange(n_items, dtype=np.int64), _counts(rng, signal.popularity, draws)
        )
        rng.shuffle(items)
        before = len(keys)
        fresh = np.concatenate([keys, users * n_items + items])
        keys = pl.Series(fresh).unique(maintain_order=True).to_numpy()
        # New pairs get rarer as the matrix fills: ask for more next time, so one top-up suffices.
        growth = 1.5 * draws / max(len(keys) - before, 1)
    if len(keys) > target:
        # Drop the surplus at random from the last round, not from its last users.
        surplus = rng.choice(np.arange(before, len(keys)), size=len(keys) - target, replace=False)
        keys = np.delete(keys, surplus)
    shortfall = target - len(keys)
    if shortfall > 0 and n_users * n_items <= 50_000_000:
        # Nearly every pair is taken (tiny catalogues): fill from the unused ones directly.
        everything = np.arange(n_users * n_items, dtype=np.int64)
        unused = np.setdiff1d(everything, keys, assume_unique=True)
        keys = np.concatenate([keys, rng.choice(unused, size=shortfall, replace=False)])
    return keys


def generate(params: SyntheticParams, seed: int) -> RawTables:
    """A deterministic MovieLens-shaped dataset for `seed`: 1-based ids, 1-5 star ratings,
    1998-2000 timestamps, cohort arrivals, Zipf popularity and a learnable preference signal."""
    signal = planted_signal(params, seed)
    events = np.random.default_rng([seed, 2])
    n_items = params.n_items

    keys = _pairs(signal, params.n_events, events)
    user = keys // n_items
    item = keys - user * n_items
    del keys

    # Events are finished chunk by chunk so no full-length temporaries pile up.
    timestamp = np.empty(len(user), dtype=np.int64)
    rating = np.empty(len(user), dtype=np.float32)
    score_mean = np.empty(len(user), dtype=np.float64)
    group = signal.user_group
    cuts: np.ndarray | None = None
    for start in range(0, len(user), CHUNK):
        span = slice(start, start + CHUNK)
        users, items = user[span], item[span]
        # Each user's events follow their arrival, denser soon after it.
        arrival = signal.arrival[users]
        spread = events.random(len(users)) ** 3
        timestamp[span] = arrival + ((END - arrival) * spread).astype(np.int64)
        mean = (
            np.einsum("ij,ij->i", signal.user_factors[users], signal.item_factors[items])
            + signal.item_demographic[items, group[users]]
            + 0.8 * signal.item_quality[items]
            + signal.user_bias[users]
        )
        score_mean[span] = mean
        score = mean + events.normal(0.0, NOISE_SD, len(users)).astype(np.float32)
        if cuts is None:
            # Cut points (from the first chunk) that give MovieLens's rating shares.
            cuts = np.quantile(score, np.cumsum(RATING_SHARES)[:-1]).astype(np.float32)
        rating[span] = np.searchsorted(cuts, score) + 1
    user += 1  # ids are 1-based, as in MovieLens
    item += 1

    interactions = pl.DataFrame(
        {"user_id": user, "item_id": item, "rating": rating, "timestamp": timestamp}
    )
    assert cuts is not None
    oracle = pl.DataFrame(
        {
            "user_id": user,
            "item_id": item,
            "timestamp": timestamp,
            "score_mean": score_mean,
            **{f"cut_{index}": float(cut) for index, cut in enumerate(cuts, start=1)},
            "noise_sd": NOISE_SD,
        },
        schema=ORACLE_SCHEMA,
    )
    return RawTables(
        interactions=conform(interactions, "interactions"),
        users=_users(signal, seed),
        items=_items(signal),
        sources={
            name: SourceRef(f"synthetic://seed={seed}", derived=True)
            for name in ("interactions", "users", "items")
        },
        oracle=oracle,
    )


def empty_oracle() -> pl.DataFrame:
    """The oracle table of a dataset whose truth nobody knows (every real MovieLens)."""
    return pl.DataFrame(schema=ORACLE_SCHEMA)


def oracle_probabilities(
    oracle: pl.DataFrame, drop_ratings: list[float], positive_threshold: float
) -> np.ndarray:
    """P(label = 1 | the event is kept) for each oracle row, from the generator's own model:
    rating r has probability Φ((c_r − μ)/σ) − Φ((c_{r−1} − μ)/σ) between its cut points, and the
    label rule keeps ratings outside `drop_ratings` and calls those ≥ the threshold positive. The
    best any model can do on these events: the ceiling of the quality table."""
    from scipy.special import ndtr

    mean = oracle["score_mean"].to_numpy()
    sd = oracle["noise_sd"].to_numpy()
    cuts = oracle.select(pl.col(r"^cut_\d+$")).to_numpy()
    bounds = np.column_stack([np.full(len(mean), -np.inf), cuts, np.full(len(mean), np.inf)])
    below = ndtr((bounds - mean[:, None]) / sd[:, None])
    per_rating = np.diff(below, axis=1)  # (events, 5 stars)
    stars = np.arange(1, per_rating.shape[1] + 1, dtype=np.float64)
    kept = ~np.isin(stars, drop_ratings)
    positive = kept & (stars >= positive_threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        return per_rating[:, positive].sum(axis=1) / per_rating[:, kept].sum(axis=1)


def _users(signal: PlantedSignal, seed: int) -> pl.DataFrame:
    zips = np.random.default_rng([seed, 3]).integers(0, 100_000, len(signal.gender))
    frame = pl.DataFrame(
        {
            "user_id": np.arange(1, len(signal.gender) + 1),
            "gender": np.array(GENDERS)[signal.gender],
            "age": AGE_BUCKETS[signal.age],
            "occupation": np.array(OCCUPATIONS)[signal.occupation],
            "zip": zips,
        }
    ).with_columns(pl.col("zip").cast(pl.String).str.zfill(5))
    return conform(frame, "users")


def _items(signal: PlantedSignal) -> pl.DataFrame:
    n_items = len(signal.year)
    rows, columns = np.nonzero(signal.item_genres)  # row-major: each item's genres in list order
    genres = (
        pl.DataFrame({"row": rows, "genre": np.array(MOVIELENS_GENRES)[columns]})
        .group_by("row", maintain_order=True)
        .agg("genre")
    )
    frame = (
        pl.DataFrame({"row": np.arange(n_items), "year": signal.year})
        .join(genres, on="row", how="left", maintain_order="left")
        .select(
            (pl.col("row") + 1).alias("item_id"),
            pl.format("Synthetic movie {} ({})", pl.col("row") + 1, pl.col("year")).alias("title"),
            pl.col("year"),
            pl.col("genre").alias("genres"),
        )
    )
    return conform(frame, "items")
