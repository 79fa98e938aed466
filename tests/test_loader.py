"""Streaming loader (aiaic.data.loader): content, determinism, rank/worker coverage, spawn workers.

Shards are real tars written by support.split_fixtures; workers are real spawn-started processes.
"""

from __future__ import annotations

import logging
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from skimage import color
from support.split_fixtures import read_split, write_split_dir

from aiaic.data.loader import (
    LoaderConfig,
    make_loader,
    normalize_mel,
    open_shards,
    open_split,
    shard_sample_counts,
)
from aiaic.data.sample import encode_sample
from aiaic.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    """2 classes x 5 videos x 4 s, png frames 64 x 80; train: 32 samples in 8 shards of 4; val: 8 in 2."""
    root = tmp_path_factory.mktemp("split")
    return write_split_dir(
        root, classes=2, videos_per_class=5, seconds=4, size=64, shards_per_split={"train": 8, "val": 2},
        silent_videos=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def train_samples(split_dir):
    return read_split(split_dir, "train")


def _keys(batches) -> list[str]:
    return [k for b in batches for k in b["key"]]


def _eval(**kw) -> LoaderConfig:
    return LoaderConfig(**{"image_size": 64, "batch_size": 4, "train": False, **kw})


def test_eval_batch_is_centre_crop_in_lab_matching_skimage(split_dir, train_samples):
    source = open_split(split_dir, "train")
    batches = list(make_loader(source, _eval()))
    assert _keys(batches) and sorted(_keys(batches)) == sorted(train_samples)
    b = batches[0]
    assert (
        b["L"].shape == (4, 1, 64, 64) and b["ab"].shape == (4, 2, 64, 64) and b["rgb"].dtype == torch.float32
    )
    for i, key in enumerate(b["key"]):
        image = train_samples[key].image  # [64, 80, 3]
        crop = image[:, 8:72]  # centre crop of the 80-pixel-wide frame
        np.testing.assert_array_equal(b["rgb"][i].numpy(), crop.transpose(2, 0, 1) / np.float32(255.0))
        lab = color.rgb2lab(crop / 255.0)  # float64 reference
        np.testing.assert_allclose(b["L"][i, 0].double().numpy() * 50 + 50, lab[..., 0], atol=1e-3)
        np.testing.assert_allclose(
            b["ab"][i].double().numpy() * 110, lab[..., 1:].transpose(2, 0, 1), atol=1e-3
        )
        assert b["label"][i] == train_samples[key].label_id
        assert b["video_id"][i] == train_samples[key].meta["video_id"]


def test_eval_resizes_short_side_before_centre_crop(split_dir, train_samples):
    batches = list(make_loader(open_split(split_dir, "train"), _eval(image_size=32)))
    b = batches[0]
    assert b["rgb"].shape == (4, 3, 32, 32)
    for i, key in enumerate(b["key"]):
        small = Image.fromarray(train_samples[key].image).resize((40, 32), Image.Resampling.BICUBIC)
        want = np.asarray(small)[:, 4:36].transpose(2, 0, 1) / np.float32(255.0)
        np.testing.assert_array_equal(b["rgb"][i].numpy(), want)


def test_train_crops_and_flips_come_from_the_frame(split_dir, train_samples):
    cfg = LoaderConfig(image_size=48, batch_size=8, train=True, train_resize=1.25, seed=3)
    flips = crops = 0
    for b in make_loader(open_split(split_dir, "train"), cfg):
        for i, key in enumerate(b["key"]):
            full = np.asarray(
                Image.fromarray(train_samples[key].image).resize((75, 60), Image.Resampling.BICUBIC)
            )
            got = (b["rgb"][i].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            found = [
                (top, left, flip)
                for flip in (False, True)
                for top in range(60 - 48 + 1)
                for left in range(75 - 48 + 1)
                if np.array_equal((full[:, ::-1] if flip else full)[top : top + 48, left : left + 48], got)
            ]
            assert found, f"{key}: the crop is not a window of the resized frame"
            flips += found[0][2]
            crops += found[0][:2] != ((60 - 48) // 2, (75 - 48) // 2)
    assert 0 < flips < 32 and crops > 16  # random, not constant


@pytest.mark.parametrize("train", [True, False])
def test_prepare_resize_is_the_whole_frame_without_flip(split_dir, train_samples, train):
    """prepare = "resize", flip = False (DDColor's preparation): every item is the whole 64 x 80 frame
    resized to 48 x 48 (bicubic), in training as in evaluation: no crop, no flip."""
    cfg = LoaderConfig(image_size=48, batch_size=8, train=train, prepare="resize", flip=False, seed=3)
    n = 0
    for b in make_loader(open_split(split_dir, "train"), cfg):
        for i, key in enumerate(b["key"]):
            want = np.asarray(
                Image.fromarray(train_samples[key].image).resize((48, 48), Image.Resampling.BICUBIC)
            )
            got = (b["rgb"][i].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            np.testing.assert_array_equal(got, want)
            n += 1
    assert n >= 24
    with pytest.raises(ConfigError, match="prepare"):
        LoaderConfig(prepare="pad")


def test_mel_is_normalised_with_manifest_stats_and_silent_is_zero(split_dir, train_samples):
    source = open_split(split_dir, "train")
    mean, std = np.asarray(source.mel_mean), np.asarray(source.mel_std)
    seen_silent = 0
    for b in make_loader(source, _eval()):
        for i, key in enumerate(b["key"]):
            s = train_samples[key]
            if s.mel is None:
                seen_silent += 1
                assert not b["has_audio"][i] and torch.count_nonzero(b["mel"][i]) == 0
                continue
            assert b["has_audio"][i]
            want = (s.mel - mean[:, None]) / std[:, None]
            np.testing.assert_allclose(b["mel"][i, 0].numpy(), want, rtol=1e-5, atol=1e-5)
    assert seen_silent == 4  # one silent video of 4 seconds
    mel = torch.randn(3, 1, 64, 97)
    got = normalize_mel(mel, torch.tensor(mean), torch.tensor(std))
    np.testing.assert_allclose(
        got.numpy(), (mel.numpy() - mean[:, None]) / std[:, None], rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="band"):
        normalize_mel(torch.zeros(64, 10).T, mean, std)


def test_neg_mel_is_audio_of_another_video(split_dir, train_samples):
    source = open_split(split_dir, "train")
    mean, std = np.asarray(source.mel_mean), np.asarray(source.mel_std)
    by_mel = {}
    for s in train_samples.values():
        if s.mel is not None:
            normed = ((s.mel - mean[:, None].astype(np.float32)) / std[:, None].astype(np.float32)).astype(
                np.float32
            )
            by_mel[normed.round(3).tobytes()] = s.meta["video_id"]
    checked = 0
    for cfg in (_eval(), LoaderConfig(batch_size=4, train=True, seed=1, neg_pool=8)):
        for epoch in (0, 1):
            loader = make_loader(source, cfg)
            loader.set_epoch(epoch)
            for b in loader:
                for i in range(len(b["key"])):
                    owner = by_mel[b["neg_mel"][i, 0].numpy().round(3).tobytes()]  # a real clip of the split
                    assert owner != b["video_id"][i]
                    checked += 1
    assert checked == 4 * 32
    labels = {vid: s.label_id for s in train_samples.values() for vid in [s.meta["video_id"]]}
    same_label = {False: 0, True: 0}
    for other_label in (False, True):
        for b in make_loader(source, _eval(neg_other_label=other_label, neg_pool=16)):
            for i in range(len(b["key"])):
                owner = by_mel[b["neg_mel"][i, 0].numpy().round(3).tobytes()]
                same_label[other_label] += labels[owner] == int(b["label"][i])
    assert same_label[False] > 0 and same_label[True] == 0


def test_same_seed_and_epoch_give_identical_batches(split_dir):
    source = open_split(split_dir, "train")
    cfg = LoaderConfig(
        image_size=48, batch_size=4, train=True, seed=7, epoch=2, train_resize=1.25, mask_prob=0.5
    )
    a, b = list(make_loader(source, cfg)), list(make_loader(source, cfg))
    assert len(a) == len(b) == 8
    for x, y in zip(a, b, strict=True):
        assert x["key"] == y["key"]
        for k in ("L", "ab", "rgb", "mel", "neg_mel", "has_audio", "audio_mask", "label"):
            assert torch.equal(x[k], y[k]), k
    other = make_loader(source, cfg)
    other.set_epoch(3)
    c = list(other)
    assert _keys(c) != _keys(a)
    assert sorted(_keys(c)) == sorted(_keys(a))  # 32 samples, 8 full batches: every sample once per epoch
    other.set_epoch(2)
    assert _keys(list(other)) == _keys(a)  # set_epoch reproduces the epoch
    seeded = list(make_loader(source, LoaderConfig(image_size=48, batch_size=4, train=True, seed=8, epoch=2)))
    assert _keys(seeded) != _keys(a)


def test_audio_mask_follows_mask_prob(split_dir):
    source = open_split(split_dir, "train")
    for p, lo, hi in ((0.0, 0, 0), (1.0, 32, 32), (0.5, 8, 24)):
        masks = torch.cat([b["audio_mask"] for b in make_loader(source, _eval(mask_prob=p))])
        assert masks.dtype == torch.bool and lo <= int(masks.sum()) <= hi, (p, int(masks.sum()))


@pytest.mark.slow
def test_two_ranks_two_spawn_workers_cover_every_sample_once(split_dir, train_samples):
    """Eval: 8 shards of 4 over 2 ranks x 2 workers, batch 4: each sample exactly once, 4 batches per rank."""
    source = open_split(split_dir, "train")
    cfg = _eval(workers=2)
    seen: list[str] = []
    lengths = []
    for rank in range(2):
        with make_loader(source, cfg, rank=rank, world_size=2) as loader:
            batches = list(loader)
            assert loader._loader.multiprocessing_context.get_start_method() == "spawn"
            lengths.append((len(loader), len(batches)))
            assert all(len(b["key"]) == 4 for b in batches)
            seen += _keys(batches)
    assert lengths == [(4, 4), (4, 4)]
    assert Counter(seen) == Counter(train_samples.keys())


@pytest.mark.slow
def test_spawn_workers_are_deterministic_and_match_in_process_content(split_dir):
    source = open_split(split_dir, "train")
    cfg = LoaderConfig(image_size=64, batch_size=4, workers=2, train=True, seed=5, mask_prob=0.3)
    with make_loader(source, cfg) as la, make_loader(source, cfg) as lb:
        a, b = list(la), list(lb)
        lb.set_epoch(1)
        c = list(lb)  # persistent workers pick up the new epoch
        lb.close()
        assert _keys(list(lb)) == _keys(c)  # restarted workers, same epoch
    assert len(a) == 8 and _keys(a) == _keys(b) and _keys(c) != _keys(a)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["rgb"], y["rgb"]) and torch.equal(x["audio_mask"], y["audio_mask"])
    # the same samples decoded in this process give the same Lab (eval: no randomness in the pixels)
    ev = _eval(workers=2)
    with make_loader(source, ev) as lw:
        w_batches = {k: (bt, i) for bt in lw for i, k in enumerate(bt["key"])}
    for bt in make_loader(source, _eval()):
        for i, k in enumerate(bt["key"]):
            other, j = w_batches[k]
            assert torch.equal(bt["L"][i], other["L"][j]) and torch.equal(bt["mel"][i], other["mel"][j])


def test_uneven_shards_equal_batches_per_rank(tmp_path, caplog):
    """75 samples in 7 shards of 10-11, batch 4, over one rank and over two ranks (in-process)."""
    root = write_split_dir(tmp_path, classes=3, videos_per_class=5, seconds=5, size=32, shards_per_split=7,
                           val_videos_per_class=0)  # fmt: skip
    source = open_split(root, "train")
    all_keys = set(read_split(root, "train"))
    assert source.samples == 75 and sorted(shard_sample_counts(source.urls)) == [10, 10, 11, 11, 11, 11, 11]
    # train: floor(75 / (2 * 4)) = 9 full batches on each rank, whatever the shards hold
    for rank in range(2):
        batches = list(
            make_loader(
                source, LoaderConfig(image_size=32, batch_size=4, train=True), rank=rank, world_size=2
            )
        )
        assert len(batches) == 9 and all(len(b["key"]) == 4 for b in batches)
    # eval, one rank: every sample exactly once (the last batch is partial)
    one = list(make_loader(source, LoaderConfig(image_size=32, batch_size=4, train=False)))
    assert Counter(_keys(one)) == Counter(dict.fromkeys(all_keys, 1)) and len(one) == 19
    # eval, two ranks: equal batch counts; the rank with fewer samples repeats some (logged), none is lost
    caplog.set_level(logging.WARNING, logger="aiaic.data.loader")
    ev = LoaderConfig(image_size=32, batch_size=4, train=False)
    ranks = [list(make_loader(source, ev, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    seen = Counter(_keys(ranks[0]) + _keys(ranks[1]))
    assert set(seen) == all_keys and max(seen.values()) <= 2
    assert "pads" in caplog.text


def test_too_few_shards_for_ranks_times_workers(split_dir):
    source = open_split(split_dir, "val")  # 2 shards
    with pytest.raises(ConfigError, match=r"2 shard\(s\) for 2 rank\(s\) x 2 loader worker\(s\)"):
        make_loader(source, _eval(workers=2), rank=0, world_size=2)
    with pytest.raises(ConfigError, match="rank 2"):
        make_loader(source, _eval(), rank=2, world_size=2)
    with pytest.raises(ConfigError, match="mask_prob"):
        LoaderConfig(mask_prob=1.5)


def test_brace_pattern_with_explicit_stats_reads_the_same_samples(split_dir):
    source = open_split(split_dir, "train")
    pattern = str(split_dir / "train" / "train-{000000..000007}.tar")
    plain = open_shards(pattern, mel_mean=list(source.mel_mean), mel_std=list(source.mel_std))
    assert plain.samples == 32 and plain.urls == source.urls
    a, b = list(make_loader(source, _eval())), list(make_loader(plain, _eval()))
    assert _keys(a) == _keys(b) and all(torch.equal(x["mel"], y["mel"]) for x, y in zip(a, b, strict=True))
    scalar = open_shards(pattern, mel_mean=-2.0, mel_std=3.0)
    assert scalar.mel_mean == (-2.0,) * 64
    with pytest.raises(ConfigError, match="mel_std"):
        open_shards(pattern, mel_mean=0.0, mel_std=[1.0] * 63)


def test_bad_inputs_name_the_file(split_dir, tmp_path):
    with pytest.raises(InputError, match="no manifest.json"):
        open_split(tmp_path, "train")
    with pytest.raises(ConfigError, match="no split 'test'"):
        open_split(split_dir, "test")
    with pytest.raises(InputError, match="shard not found"):
        open_shards(str(tmp_path / "missing-{0..1}.tar"), mel_mean=0.0, mel_std=1.0)
    bad = tmp_path / "bad-000000.tar"
    good = split_dir / "val" / "val-000000.tar"
    data = good.read_bytes()
    bad.write_bytes(data[:1200] + b"\x07" * 300 + data[1500:])  # a corrupt member header
    with pytest.raises(InputError, match="bad-000000.tar: cannot read shard"):
        open_shards(str(bad), mel_mean=0.0, mel_std=1.0)
    src = open_shards(str(bad), mel_mean=0.0, mel_std=1.0, samples=4)
    with pytest.raises(InputError, match="bad-000000.tar: cannot read shard"):
        list(make_loader(src, LoaderConfig(batch_size=4)))  # train: no up-front count, fails while reading
    short = tmp_path / "short-000000.tar"
    short.write_bytes(data[: len(data) // 2])  # truncated inside a member
    with pytest.raises(InputError, match="short-000000.tar: cannot read shard"):
        open_shards(str(short), mel_mean=0.0, mel_std=1.0)
    with pytest.raises(InputError, match="lists 5 samples but its shards hold 4"):
        make_loader(open_shards(str(good), mel_mean=0.0, mel_std=1.0, samples=5), _eval())
    odd = tmp_path / "odd-000000.tar"
    with wds.TarWriter(str(odd)) as sink:  # json without video_id, and a mel that is not [64, 97]
        sink.write(encode_sample("k_000000_s00", np.zeros((8, 8, 3), np.uint8), {"label_id": 0}))
    with pytest.raises(InputError, match=r"odd-000000.tar: sample 'k_000000_s00': bad json/cls.*video_id"):
        list(make_loader(open_shards(str(odd), mel_mean=0.0, mel_std=1.0), _eval(image_size=8, batch_size=1)))
    meta = {"label_id": 0, "video_id": "k", "has_audio": True}
    with wds.TarWriter(str(odd)) as sink:
        sink.write(encode_sample("k_000000_s00", np.zeros((8, 8, 3), np.uint8), meta, mel=np.zeros((64, 10))))
    with pytest.raises(InputError, match=r"mel shape \(64, 10\)"):
        list(make_loader(open_shards(str(odd), mel_mean=0.0, mel_std=1.0), _eval(image_size=8, batch_size=1)))


def test_shard_counts_read_from_tar_headers(split_dir):
    source = open_split(split_dir, "val")
    counts = shard_sample_counts(source.urls)
    assert counts == (4, 4)
    with tarfile.open(source.urls[0]) as tar:
        names = tar.getnames()
    assert len({n.split(".")[0] for n in names}) == 4


def test_fast_jpeg_decode_matches_full_decode(tmp_path):
    """Train-time JPEG draft decoding (1/4 scale here) stays within a few grey levels of decode + resize."""
    root = write_split_dir(tmp_path, classes=2, videos_per_class=2, seconds=2, size=256, aspect=1.0,
                           shards_per_split=1, val_videos_per_class=0, image_format="jpg")  # fmt: skip
    source = open_split(root, "train")
    base = LoaderConfig(image_size=64, batch_size=8, train=True, flip=False, shuffle_buffer=0)
    fast = next(iter(make_loader(source, base)))
    full = next(iter(make_loader(source, LoaderConfig(**{**base.__dict__, "fast_jpeg": False}))))
    assert fast["key"] == full["key"]
    diff = (fast["rgb"] - full["rgb"]).abs()
    assert float(diff.mean()) < 0.02 and float(diff.max()) < 0.25
    assert not torch.equal(fast["rgb"], full["rgb"])  # the draft path really ran


def test_train_ranks_share_one_shard_order_per_epoch(split_dir, train_samples):
    """Train, 2 ranks, 32 samples in 8 equal shards, batch 4: each epoch every sample is seen exactly once
    over the ranks (the seeded shard shuffle is identical on both ranks), in a new order each epoch."""
    source = open_split(split_dir, "train")
    orders = []
    for epoch in (0, 1):
        cfg = LoaderConfig(batch_size=4, train=True, seed=11, epoch=epoch)
        per_rank = [_keys(make_loader(source, cfg, rank=r, world_size=2)) for r in range(2)]
        assert [len(k) for k in per_rank] == [16, 16]
        assert Counter(per_rank[0] + per_rank[1]) == Counter(train_samples.keys())
        orders.append(per_rank[0])
    assert orders[0] != orders[1]
