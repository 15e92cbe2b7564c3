"""fastcnn.data.Dataset semantics, and fit / evaluate / predict on datasets, generators and
PyDataset (Keras 3's steps_per_epoch rules)."""
import threading
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses
from fastcnn.data import AUTOTUNE, Dataset, PyDataset


def _xy(n=10):
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n)


def test_from_tensor_slices_rows_and_len():
    x, y = _xy()
    ds = Dataset.from_tensor_slices((x, y))
    assert len(ds) == 10
    rows = list(ds)
    assert len(rows) == 10 and np.array_equal(rows[3][0], x[3]) and rows[3][1] == 3
    with pytest.raises(ValueError, match="different lengths"):
        Dataset.from_tensor_slices((x, y[:4]))
    with pytest.raises(ValueError, match="scalar"):
        Dataset.from_tensor_slices(np.float32(1))


def test_batch_unbatch_roundtrip_and_remainder():
    x, y = _xy(10)
    ds = Dataset.from_tensor_slices((x, y))
    b = ds.batch(4)
    assert len(b) == 3 and [len(t[1]) for t in b] == [4, 4, 2]
    assert len(ds.batch(4, drop_remainder=True)) == 2
    back = list(b.unbatch())
    assert [int(e[1]) for e in back] == list(range(10))
    # batching a non-slice source stacks elements
    mapped = ds.map(lambda a, c: (a * 2, c)).batch(3)
    first = next(iter(mapped))
    assert first[0].shape == (3, 2) and np.array_equal(first[0], x[:3] * 2)
    with pytest.raises(ValueError):
        ds.batch(0)


def test_take_skip_repeat_cardinality():
    ds = Dataset.from_tensor_slices(np.arange(10))
    assert [int(v) for v in ds.take(3)] == [0, 1, 2] and len(ds.take(3)) == 3
    assert [int(v) for v in ds.skip(8)] == [8, 9] and len(ds.skip(8)) == 2
    assert len(ds.take(-1)) == 10 and len(ds.skip(20)) == 0
    assert len(ds.repeat(3)) == 30
    assert [int(v) for v in ds.take(2).repeat(2)] == [0, 1, 0, 1]
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())
    assert [int(v) for v in ds.repeat().take(12)][-2:] == [0, 1]
    with pytest.raises(TypeError, match="unknown"):
        len(ds.batch(3).unbatch())


def test_shuffle_is_a_seeded_permutation_reshuffled_each_pass():
    ds = Dataset.from_tensor_slices(np.arange(50))
    s = ds.shuffle(50, seed=3)
    a, b = [int(v) for v in s], [int(v) for v in s]
    assert sorted(a) == list(range(50)) and a != list(range(50))
    assert a != b  # a new order per pass
    s2 = ds.shuffle(50, seed=3)
    assert [int(v) for v in s2] == a  # same seed, same first pass
    fixed = ds.shuffle(50, seed=3, reshuffle_each_iteration=False)
    assert [int(v) for v in fixed] == [int(v) for v in fixed]
    # a small buffer only moves elements locally: element i appears at most buffer-1 early
    small = [int(v) for v in ds.shuffle(4, seed=0)]
    assert sorted(small) == list(range(50))
    assert all(pos >= v - 3 for pos, v in enumerate(small))


def test_cache_in_memory_reads_the_source_once():
    calls = []
    ds = Dataset.from_tensor_slices(np.arange(6)).map(lambda v: calls.append(1) or v * 10)
    c = ds.cache()
    assert [int(v) for v in c] == [0, 10, 20, 30, 40, 50]
    assert [int(v) for v in c] == [0, 10, 20, 30, 40, 50]
    assert len(calls) == 6


def test_cache_partial_pass_is_not_kept():
    calls = []
    c = Dataset.from_tensor_slices(np.arange(6)).map(lambda v: calls.append(1) or v).cache()
    for _ in c.take(2):
        pass
    assert [int(v) for v in c] == list(range(6))
    assert len(calls) == 2 + 6
    assert [int(v) for v in c] == list(range(6)) and len(calls) == 8


def test_cache_to_file_is_reused(tmp_path):
    calls = []
    x, y = _xy(7)
    src = Dataset.from_tensor_slices((x, y)).map(lambda a, b: (calls.append(1) or a, b))
    path = tmp_path / "cache.bin"
    first = list(src.batch(3).cache(path))
    assert path.exists() and len(calls) == 7
    again = list(Dataset.from_tensor_slices((x, y)).batch(3).cache(str(path)))
    assert len(again) == 3
    for (a1, b1), (a2, b2) in zip(first, again):
        assert np.array_equal(a1, a2) and np.array_equal(b1, b2) and a1.dtype == a2.dtype
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cache"):
        list(Dataset.from_tensor_slices(x).cache(path))


def test_cache_file_partial_pass_leaves_no_file(tmp_path):
    path = tmp_path / "c"
    for _ in Dataset.from_tensor_slices(np.arange(5)).cache(path).take(2):
        pass
    assert not path.exists()


def test_prefetch_keeps_order_and_reraises():
    ds = Dataset.from_tensor_slices(np.arange(20)).prefetch(AUTOTUNE)
    assert [int(v) for v in ds] == list(range(20))

    def boom(v):
        if v == 5:
            raise RuntimeError("bad element 5")
        return v
    bad = Dataset.from_tensor_slices(np.arange(10)).map(boom).prefetch(2)
    with pytest.raises(RuntimeError, match="bad element 5"):
        list(bad)


def test_prefetch_thread_stops_when_the_consumer_stops():
    before = threading.active_count()
    ds = Dataset.from_tensor_slices(np.arange(10000)).prefetch(2)
    it = iter(ds)
    next(it)
    it.close()
    for _ in range(50):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.02)
    assert threading.active_count() <= before


def test_parallel_map_keeps_order():
    ds = Dataset.from_tensor_slices(np.arange(40)).map(lambda v: v * v,
                                                      num_parallel_calls=AUTOTUNE)
    assert [int(v) for v in ds] == [i * i for i in range(40)]


# ------------------------------------------------------------------------------- training

def _model(seed=1):
    fastcnn.utils.set_random_seed(seed)
    m = fastcnn.Sequential([layers.Input((4, 4, 1)), layers.Conv2D(3, 3, padding="same",
                                                                   activation="relu"),
                            layers.Flatten(), layers.Dense(3)])
    m.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return m


def _data(n=24):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, 4, 4, 1)).astype(np.float32),
            rng.integers(0, 3, n).astype(np.int64))


def test_fit_on_a_dataset_matches_fit_on_arrays_bitwise():
    x, y = _data()
    a = _model()
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b = _model()
    b.fit(Dataset.from_tensor_slices((x, y)).batch(8), epochs=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
    ds = Dataset.from_tensor_slices((x, y)).batch(5)
    assert np.allclose(b.evaluate(ds, verbose=0), b.evaluate(x, y, verbose=0), rtol=1e-6)
    assert np.array_equal(b.predict(ds, verbose=0), b.predict(x, batch_size=5, verbose=0))


def test_uint8_batches_are_accepted_as_today():
    x, y = _data()
    xu = (np.abs(x) * 40).astype(np.uint8)
    a, b = _model(), _model()
    a.fit(xu, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    b.fit(Dataset.from_tensor_slices((xu, y)).batch(8), epochs=1, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)


def test_generator_with_steps_per_epoch_runs_out_with_keras_warning():
    x, y = _data()
    seen = []

    def gen():
        for lo in range(0, 24, 8):  # 3 batches in all
            seen.append(lo)
            yield x[lo:lo + 8], y[lo:lo + 8]
    m = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(gen(), steps_per_epoch=2, epochs=3, verbose=0)
    # epoch 1: 2 batches, epoch 2: the last batch, then the generator is dry: training stops
    assert len(h.history["loss"]) == 2 and seen == [0, 8, 16]


def test_dataset_with_steps_per_epoch_carries_over_like_keras():
    x, y = _data(40)
    ds = Dataset.from_tensor_slices((x, y)).batch(8)  # 5 batches
    m = _model()
    counts = []

    class Count(fastcnn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            counts.append(0)

        def on_train_batch_end(self, batch, logs=None):
            counts[-1] += 1
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.fit(ds, steps_per_epoch=3, epochs=4, verbose=0, callbacks=[Count()])
    # Keras 3: 3 batches, then the remaining 2 (warning), then a new pass
    assert counts == [3, 2, 3, 2]
    assert any("ran out of data" in str(r.message) for r in w)
    # an infinite dataset needs steps_per_epoch and never warns
    h = m.fit(ds.repeat(), steps_per_epoch=7, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2


class _Seq(PyDataset):
    def __init__(self, x, y, bs, **kw):
        super().__init__(**kw)
        self.x, self.y, self.bs = x, y, bs
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        return self.x[i * self.bs:(i + 1) * self.bs], self.y[i * self.bs:(i + 1) * self.bs]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_pydataset_matches_arrays_and_workers_keep_order():
    x, y = _data()
    a = _model()
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for workers in (1, 3):
        b = _model()
        seq = _Seq(x, y, 8, workers=workers)
        b.fit(seq, epochs=2, shuffle=False, verbose=0)
        assert seq.epochs_ended == 2
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            assert np.array_equal(wa, wb)


def test_pydataset_shuffle_visits_every_batch_and_multiprocessing_is_refused():
    x, y = _data()
    order = []

    class Spy(_Seq):
        def __getitem__(self, i):
            order.append(i)
            return super().__getitem__(i)
    m = _model()
    m.fit(Spy(x, y, 4), epochs=2, shuffle=True, verbose=0)
    assert sorted(order[:6]) == list(range(6)) and sorted(order[6:]) == list(range(6))
    assert order[:6] != order[6:] or order[:6] != list(range(6))
    with pytest.raises(ValueError, match="use_multiprocessing"):
        m.fit(_Seq(x, y, 4, use_multiprocessing=True), epochs=1, verbose=0)


def test_validation_data_dataset_freq_and_steps():
    x, y = _data(32)
    train = Dataset.from_tensor_slices((x, y)).batch(8)
    val = Dataset.from_tensor_slices((x[:16], y[:16])).batch(4)
    m = _model()
    h = m.fit(train, validation_data=val, validation_freq=2, epochs=4, verbose=0)
    assert len(h.history["val_loss"]) == 2
    h = m.fit(x, y, validation_data=val, epochs=1, verbose=0)  # arrays + a val dataset
    assert np.isclose(h.history["val_loss"][0], m.evaluate(val, verbose=0)[0], rtol=1e-5)
    ev = m.evaluate(val, steps=2, verbose=0, return_dict=True)
    assert np.isclose(ev["loss"], m.evaluate(x[:8], y[:8], verbose=0)[0], rtol=1e-5)


def test_bad_batch_sources_give_clear_errors():
    x, y = _data()
    m = _model()
    ds = Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match="y must not be given"):
        m.fit(ds, y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(ds, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="no targets"):
        m.fit(Dataset.from_tensor_slices(x).batch(8), verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        m.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="incompatible"):
        m.fit(Dataset.from_tensor_slices((x[:, :3], y)).batch(8), verbose=0)


def test_range_and_from_generator():
    assert [int(v) for v in Dataset.range(2, 8, 3)] == [2, 5]
    ds = Dataset.from_generator(lambda n: ((np.full(2, i), i) for i in range(n)), args=(3,))
    assert [int(b) for _, b in ds] == [0, 1, 2] and [int(b) for _, b in ds] == [0, 1, 2]
    with pytest.raises(TypeError, match="unknown"):
        len(ds)
    x, y = next(iter(ds.batch(3)))
    assert x.shape == (3, 2) and list(y) == [0, 1, 2]


def test_arrays_with_a_validation_dataset_need_y():
    x, y = _data()
    m = _model()
    val = Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match="x and y are needed"):
        m.fit(x, validation_data=val, verbose=0)
    with pytest.raises(ValueError, match="cardinality"):
        m.fit(x, y[:5], validation_data=val, verbose=0)


# ---------------------------------------------------------------- sample and class weights

def _weights_equal(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_sample_weights_in_dataset_batches_match_the_arrays_bitwise():
    x, y = _data(30)
    sw = np.linspace(0.0, 3.0, 30).astype(np.float32)
    a = _model()
    ha = a.fit(x, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b = _model()
    hb = b.fit(Dataset.from_tensor_slices((x, y, sw)).batch(8), epochs=2, verbose=0)
    _weights_equal(a, b)
    assert ha.history["loss"] == hb.history["loss"]
    c = _model()  # the weights matter: without them the run differs
    c.fit(Dataset.from_tensor_slices((x, y)).batch(8), epochs=2, verbose=0)
    assert not np.array_equal(c.get_weights()[-1], b.get_weights()[-1])
    # evaluate and a generator of (x, y, sw) batches: the same weighted loss
    ev = b.evaluate(x, y, sample_weight=sw, batch_size=8, verbose=0)
    gen = ((x[i:i + 8], y[i:i + 8], sw[i:i + 8]) for i in range(0, 30, 8))
    assert b.evaluate(gen, verbose=0) == ev


def test_pydataset_batches_with_sample_weights_match_the_arrays():
    x, y = _data()
    sw = np.linspace(0.5, 1.5, 24).astype(np.float32)

    class Weighted(_Seq):
        def __getitem__(self, i):
            xb, yb = super().__getitem__(i)
            return xb, yb, sw[i * self.bs:(i + 1) * self.bs]
    a = _model()
    a.fit(x, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b = _model()
    b.fit(Weighted(x, y, 8), epochs=2, shuffle=False, verbose=0)
    _weights_equal(a, b)


def test_class_weight_with_a_dataset_matches_the_arrays_bitwise():
    x, y = _data(30)
    cw = {0: 0.5, 1: 2.0}  # class 2 keeps weight 1, as Keras
    a = _model()
    a.fit(x, y, class_weight=cw, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b = _model()
    b.fit(Dataset.from_tensor_slices((x, y)).batch(8), class_weight=cw, epochs=2, verbose=0)
    _weights_equal(a, b)
    sw = np.array([cw.get(int(c), 1.0) for c in y], np.float32)
    d = _model()
    d.fit(x, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0)
    _weights_equal(a, d)
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        _model().fit(Dataset.from_tensor_slices((x, y, sw)).batch(8), class_weight=cw,
                     verbose=0)
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        _model().fit(x, y, sample_weight=sw, class_weight=cw, verbose=0)
    with pytest.raises(ValueError, match="sample_weight must not be given"):
        _model().fit(Dataset.from_tensor_slices((x, y)).batch(8), sample_weight=sw,
                     verbose=0)


def test_weighted_validation_data_as_arrays_or_dataset():
    x, y = _data(32)
    sw = np.linspace(0.1, 2.0, 32).astype(np.float32)
    m = _model()
    train = Dataset.from_tensor_slices((x, y)).batch(8)
    h = m.fit(train, validation_data=(x, y, sw), epochs=1, verbose=0)
    ev = m.evaluate(x, y, sample_weight=sw, verbose=0)
    assert np.isclose(h.history["val_loss"][0], ev[0], rtol=1e-6)
    h = m.fit(x, y, validation_data=Dataset.from_tensor_slices((x, y, sw)).batch(8),
              epochs=1, shuffle=False, verbose=0)
    ev = m.evaluate(x, y, sample_weight=sw, batch_size=8, verbose=0)
    assert h.history["val_loss"][0] == ev[0]


def test_validation_arrays_for_a_model_a_dataset_builds():
    x, y = _data(24)
    fastcnn.utils.set_random_seed(1)
    m = fastcnn.Sequential([layers.Conv2D(3, 3, padding="same", activation="relu"),
                            layers.Flatten(), layers.Dense(3)])
    m.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    h = m.fit(Dataset.from_tensor_slices((x, y)).batch(8), validation_data=(x, y),
              epochs=1, verbose=0)
    assert np.isclose(h.history["val_loss"][0], m.evaluate(x, y, verbose=0), rtol=1e-6)
