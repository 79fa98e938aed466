"""`aiaic-data split`: leakage-free splits, official splits kept, OOD cap, determinism, shards, errors.

Raw inputs are built by `make_raw` (support.split_fixtures): real tar shards written with
`encode_sample` + `webdataset.TarWriter`, an index.csv, per-shard stats files and a recipe.json.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from support.split_fixtures import make_raw, raw_video, sample_mel
from typer.testing import CliRunner

from aiaic.cli.data import app
from aiaic.config import build_config, load_recipe, recipe_section
from aiaic.data.audio import MelConfig
from aiaic.data.categories import choose_ood, read_class_file, write_category_lists
from aiaic.data.manifest import read_manifest
from aiaic.data.sample import decode_sample
from aiaic.data.split import SplitConfig, run_split
from aiaic.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- helpers


def read_split(out: Path) -> tuple[dict, dict[str, list]]:
    """The manifest and, per split, the decoded samples of its shards read back with webdataset."""
    manifest = json.loads((out / "manifest.json").read_text())
    got = {}
    for name, info in manifest["splits"].items():
        urls = [str(out / s) for s in info["shards"]]
        got[name] = [decode_sample(s) for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]
    return manifest, got


def vggsound_videos() -> list[dict]:
    """6 categories x (6 train + 2 test) one-second clips, one two-clip YouTube id, one silent clip."""
    vids = []
    for c in range(6):
        for i in range(6):
            vids.append(raw_video("vggsound", f"-v{c}tr{i}", f"cat {c}", "train", start=10 * i))
        for i in range(2):
            vids.append(raw_video("vggsound", f"-v{c}te{i}", f"cat {c}", "test", start=30))
    vids.append(raw_video("vggsound", "-v0tr0", "cat 0", "train", start=200))  # same YouTube id, other clip
    vids.append(raw_video("vggsound", "-v1tr5", "cat 1", "train", start=300, audio=False))
    vids[3] = raw_video("vggsound", "AVEid000001", "cat 0", "train")  # also an AVE id
    return vids


@pytest.fixture(scope="module")
def vgg_raw(tmp_path_factory) -> Path:
    return make_raw(tmp_path_factory.mktemp("raw") / "vgg", vggsound_videos())


def vgg_config(raw: Path, out: Path, tmp: Path, **kw) -> SplitConfig:
    cats = tmp / "id.txt"
    cats.write_text("# ID list\ncat 0\ncat 1\ncat 2\ncat 3\nnot there\n")
    holdout = tmp / "Annotations.txt"
    holdout.write_text("Category&VideoID&Quality&StartTime&EndTime\nBark&AVEid000001&good&0&10\n")
    args = dict(src=(raw,), out=out, ood=1, seed=7, categories=cats, ood_samples=5, holdout_ids=holdout)
    args.update(kw)
    return SplitConfig(**args)


# ------------------------------------------------------------------------------------- tests


def test_vggsound_split_keeps_official_splits_and_holds_out(vgg_raw, tmp_path):
    cfg = vgg_config(vgg_raw, tmp_path / "out", tmp_path)
    summary = run_split(cfg)
    manifest, got = read_split(tmp_path / "out")
    assert set(manifest["splits"]) == {"train", "val", "ood"}  # VGGSound has no test split
    # categories: ID from the list (the absent one warned about, listed), 1 OOD drawn from the rest
    assert manifest["id_categories"] == ["cat 0", "cat 1", "cat 2", "cat 3"]
    assert manifest["ood_categories"] == choose_ood(["cat 4", "cat 5"], 1, 7)
    assert any("not there" in w for w in summary.warnings)
    ood_cat = manifest["ood_categories"][0]
    other = ({"cat 4", "cat 5"} - {ood_cat}).pop()
    assert manifest["label_ids"] == {"cat 0": 0, "cat 1": 1, "cat 2": 2, "cat 3": 3, ood_cat: 4}

    by_split = {n: {s.meta["video_id"] for s in got[n]} for n in got}
    # no video in two splits; OOD categories only in ood; the category outside both lists nowhere
    assert not (by_split["train"] & by_split["val"]) and not (
        by_split["ood"] & (by_split["train"] | by_split["val"])
    )
    labels = {n: {s.meta["label"] for s in got[n]} for n in got}
    assert labels["ood"] == {ood_cat} and ood_cat not in labels["train"] | labels["val"]
    assert other not in labels["train"] | labels["val"] | labels["ood"]
    # official splits: VGGSound train -> train, test -> val
    assert all("tr" in v for v in by_split["train"]) and all("te" in v for v in by_split["val"])
    assert len(by_split["val"]) == 8 and manifest["splits"]["val"]["samples"] == 8
    # the id that is also an AVE id is kept out of train (and of every split: its row is official train)
    assert "AVEid000001" not in set().union(*by_split.values())
    assert manifest["excluded"]["video id is also an AVE / holdout id: kept out of train"] == 1
    # the OOD cap: 8 OOD clips exist, 5 kept
    assert len(got["ood"]) == 5 == manifest["splits"]["ood"]["samples"]
    # re-packed json/cls carry the manifest's ids and the split name; other fields unchanged
    for name, samples in got.items():
        for s in samples:
            assert s.label_id == s.meta["label_id"] == manifest["label_ids"][s.meta["label"]]
            assert s.meta["split"] == name and s.meta["recipe_hash"] == "abc123"
            assert s.image[0, 0, 1] == 40 + 20 * s.meta["segment"] and s.image[0, 0, 2] == 120
            if s.meta["has_audio"]:
                np.testing.assert_array_equal(s.mel, sample_mel(s.key, s.meta["label"]))
            else:
                assert s.mel is None and s.pcm is None


def test_counts_shards_and_train_only_mel_stats(vgg_raw, tmp_path):
    out = tmp_path / "out"
    run_split(vgg_config(vgg_raw, out, tmp_path, ranks=1, workers=2))
    manifest, got = read_split(out)
    for name, info in manifest["splits"].items():
        assert info["samples"] == len(got[name])
        assert info["videos"] == len({s.meta["video_id"] for s in got[name]})
        assert info["categories"] == len({s.meta["label"] for s in got[name]})
        sizes = [sum(1 for _ in wds.WebDataset(str(out / sh), shardshuffle=False)) for sh in info["shards"]]
        assert max(sizes) - min(sizes) <= 1 and all(sh.startswith(f"{name}/") for sh in info["shards"])
        assert info["shard_samples"] == sizes
    # 4 x 6 ID train clips, one held out (AVE id), plus second clips (one silent) of two ids
    assert manifest["splits"]["train"]["samples"] == 4 * 6 - 1 + 2
    assert manifest["splits"]["train"]["videos"] == 4 * 6 - 1
    assert len(manifest["splits"]["train"]["shards"]) == 8
    assert len(manifest["splits"]["val"]["shards"]) == 8  # 8 samples: 8 shards of one
    assert len(manifest["splits"]["ood"]["shards"]) == 5
    assert any("'ood' is too small" in w for w in manifest["warnings"])
    # mel mean/std per band over train frames only
    train_mels = np.stack([s.mel for s in got["train"] if s.mel is not None]).astype(np.float64)
    stats = manifest["audio_stats"]
    assert stats["computed_on"] == "train" and stats["samples"] == len(train_mels) == 24
    np.testing.assert_allclose(stats["mel_mean"], train_mels.mean(axis=(0, 2)), atol=1e-9)
    np.testing.assert_allclose(stats["mel_std"], train_mels.std(axis=(0, 2)), rtol=1e-6)
    assert stats["mel_mean_scalar"] == pytest.approx(train_mels.mean())
    all_mels = np.stack([s.mel for n in got for s in got[n] if s.mel is not None])
    assert abs(stats["mel_mean_scalar"] - all_mels.mean()) > 1e-3  # val/ood data would change it
    assert manifest["mel_config"] == MelConfig().to_dict()
    # index.csv of the split agrees with the shards
    with (out / "index.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert Counter(r["split"] for r in rows) == {n: len(v) for n, v in got.items()}


def test_the_manifest_schema_holds_every_key_the_split_writes(vgg_raw, tmp_path):
    run_split(vgg_config(vgg_raw, tmp_path / "out", tmp_path))
    doc = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest = read_manifest(tmp_path / "out")
    assert manifest.to_dict() == doc  # read back whole: nothing lost, nothing added
    assert manifest.splits["val"].samples == doc["splits"]["val"]["samples"] == 8
    assert manifest.splits["train"].shard_samples == tuple(doc["splits"]["train"]["shard_samples"])
    assert manifest.audio_stats is not None and manifest.audio_stats.std_floor == 1e-3
    broken = tmp_path / "broken"
    broken.mkdir()
    del doc["splits"]["val"]["samples"]
    (broken / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(
        InputError, match=r"broken/manifest.json: not a valid split manifest: KeyError: 'samples'"
    ):
        read_manifest(broken)


def test_same_seed_same_split_other_seed_other_shuffle(vgg_raw, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run_split(vgg_config(vgg_raw, a, tmp_path))
    run_split(vgg_config(vgg_raw, b, tmp_path))
    run_split(vgg_config(vgg_raw, c, tmp_path, seed=8))
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    ma.pop("created"), mb.pop("created")
    assert ma == mb
    for info in ma["splits"].values():
        for sh in info["shards"]:
            assert (a / sh).read_bytes() == (b / sh).read_bytes()
    keys = lambda d: [s.key for s in read_split(d)[1]["train"]]  # noqa: E731
    assert keys(a) != keys(c) and sorted(keys(a)) == sorted(keys(c))  # same train set, other shuffle
    assert not list(a.rglob(".*tmp*"))


def test_ave_keeps_official_train_val_test_and_shuffles_seconds(tmp_path):
    vids = []
    for c in range(3):
        for split, n in (("train", 4), ("val", 1), ("test", 2)):
            vids += [raw_video("ave", f"a{c}{split}{i}", f"Ave{c}", split, seconds=10) for i in range(n)]
    raw = make_raw(tmp_path / "raw", vids, shards=2)
    run_split(SplitConfig(src=(raw,), out=tmp_path / "out", seed=1, ranks=2, workers=2))
    manifest, got = read_split(tmp_path / "out")
    assert set(manifest["splits"]) == {"train", "val", "test"}
    for name in ("train", "val", "test"):
        assert {s.meta["video_id"][2:-1] for s in got[name]} == {name}  # official split of every video kept
    assert (
        manifest["splits"]["train"]["samples"] == 3 * 4 * 10
        and len(manifest["splits"]["train"]["shards"]) == 16
    )
    assert manifest["splits"]["test"]["videos"] == 6 and manifest["splits"]["test"]["samples"] == 60
    assert [s.meta["in_event"] for s in got["test"]] == [s.meta["segment"] % 2 == 0 for s in got["test"]]
    # shuffled: neighbouring samples in a shard rarely come from the same video
    tr = got["train"]
    same = sum(x.meta["video_id"] == y.meta["video_id"] for x, y in zip(tr, tr[1:], strict=False))
    assert same < 0.25 * len(tr)


def test_ave_id_in_a_vggsound_source_is_kept_out_of_train(tmp_path):
    vgg = [raw_video("vggsound", f"y{i}", "dog", "train", start=i) for i in range(6)]
    vgg += [
        raw_video("vggsound", "shared_id", "dog", "train", start=0),
        raw_video("vggsound", "y9", "dog", "test"),
    ]
    ave = [
        raw_video("ave", "shared_id", "Dog", "test", seconds=3, start=1),
        raw_video("ave", "a1", "Dog", "train", 3),
    ]
    raw_v, raw_a = make_raw(tmp_path / "v", vgg, shards=2), make_raw(tmp_path / "a", ave, shards=1)
    run_split(SplitConfig(src=(raw_v, raw_a), out=tmp_path / "out", ranks=1, workers=1))
    manifest, got = read_split(tmp_path / "out")
    train_ids = {s.meta["video_id"] for s in got["train"]}
    assert "shared_id" not in train_ids and "a1" in train_ids
    assert {(s.meta["dataset"], s.meta["video_id"]) for s in got["test"]} == {("ave", "shared_id")}
    assert len(manifest["source_shards"]) == 3


def test_paper_layout_vggsound_train_val_ood_and_ave_test(tmp_path):
    vgg = [raw_video("vggsound", f"y{c}{i}", f"v{c}", "train", start=i) for c in range(4) for i in range(4)]
    vgg += [raw_video("vggsound", f"t{c}", f"v{c}", "test") for c in range(4)]
    vgg.append(raw_video("vggsound", "ave_tr", "v0", "train"))  # an AVE id in VGGSound train
    ave = [raw_video("ave", f"ave_{s[:2]}", "Dog", s, seconds=3) for s in ("train", "test")]
    ave += [
        raw_video("ave", "ave_te2", "Cat", "test", seconds=3),
        raw_video("ave", "ave_va", "Cat", "val", seconds=3),
    ]
    raw_v, raw_a = make_raw(tmp_path / "v", vgg, shards=2), make_raw(tmp_path / "a", ave, shards=1)
    cfg = SplitConfig(src=(raw_v, raw_a), out=tmp_path / "out", ood=1, seed=2, test_datasets=("ave",))
    run_split(cfg)
    manifest, got = read_split(tmp_path / "out")
    assert set(manifest["splits"]) == {"train", "val", "ood", "test"}
    assert {s.meta["video_id"] for s in got["test"]} == {"ave_te", "ave_te2"} and len(got["test"]) == 6
    assert manifest["ood_categories"][0] in {"v0", "v1", "v2", "v3"}  # never an AVE category
    assert (
        len(manifest["id_categories"]) == 3
        and manifest["label_ids"]["Cat"] == 4
        and manifest["label_ids"]["Dog"] == 5
    )
    assert {s.meta["dataset"] for s in got["train"] + got["val"] + got["ood"]} == {"vggsound"}
    assert "ave_tr" not in {s.meta["video_id"] for s in got["train"]}
    assert manifest["excluded"]["ave row outside its official test split (test_datasets)"] == 6


def test_video_in_two_official_splits_goes_to_the_held_out_one(tmp_path):
    # the official AVE lists put a few videos in two sets (train and test); rows are never split up
    vids = [raw_video("ave", f"a{i}", "Bark", "train", seconds=2) for i in range(5)]
    vids += [
        raw_video("ave", "twice", "Bark", "train", seconds=2),
        raw_video("ave", "twice", "Bark", "test", 2, start=5),
    ]
    raw = make_raw(tmp_path / "raw", vids)
    run_split(SplitConfig(src=(raw,), out=tmp_path / "out", ranks=1, workers=1))
    manifest, got = read_split(tmp_path / "out")
    assert {s.meta["video_id"] for s in got["test"]} == {"twice"} and len(got["test"]) == 2
    assert "twice" not in {s.meta["video_id"] for s in got["train"]}
    assert manifest["excluded"] == {"video already in a more held-out split": 2}


def test_same_key_kept_from_two_sources_is_an_error(tmp_path):
    a = make_raw(
        tmp_path / "a", [raw_video("folder", "v1", "x", None, 2), raw_video("folder", "v2", "x", None, 2)]
    )
    b = make_raw(tmp_path / "b", [raw_video("folder", "v1", "x", None, 2)])
    with pytest.raises(InputError, match="sample keys kept from more than one source"):
        run_split(SplitConfig(src=(a, b), out=tmp_path / "out", val_fraction=0.0))


def test_committed_ave_id_list_matches_the_annotations(shared_data, tmp_path):
    from aiaic.data.categories import read_video_ids, write_video_id_list

    ann = shared_data / "metadata" / "ave" / "Annotations.txt"
    committed = ROOT / "manifests" / "ave-video-ids.txt"
    assert read_video_ids(committed) == read_video_ids(ann) and len(read_video_ids(ann)) == 4097
    out = write_video_id_list(ann, tmp_path / "ave-video-ids.txt")
    text = out.read_text().replace(str(ann), "../shared/data/metadata/ave/Annotations.txt")
    assert text.replace(str(out), "manifests/ave-video-ids.txt") == committed.read_text()
    vgg = build_config(
        SplitConfig, recipe_section(load_recipe(ROOT / "pipelines" / "vggsound.toml"), "split")
    )
    assert (ROOT / vgg.holdout_ids).resolve() == committed.resolve()


def test_folder_source_val_fraction_by_video(tmp_path):
    vids = [raw_video("folder", f"c{c}__v{i}", f"c{c}", None, seconds=3) for c in range(3) for i in range(8)]
    raw = make_raw(tmp_path / "raw", vids)
    run_split(SplitConfig(src=(raw,), out=tmp_path / "out", val_fraction=0.25, ood=1, seed=3))
    manifest, got = read_split(tmp_path / "out")
    assert set(manifest["splits"]) == {"train", "val", "ood"}
    for cat in manifest["id_categories"]:
        val_v = {s.meta["video_id"] for s in got["val"] if s.meta["label"] == cat}
        tr_v = {s.meta["video_id"] for s in got["train"] if s.meta["label"] == cat}
        assert len(val_v) == 2 and len(tr_v) == 6 and not val_v & tr_v
    assert manifest["splits"]["ood"]["samples"] == 24 and manifest["splits"]["ood"]["categories"] == 1
    # a holdout id in a folder source (no official split) is kept out of train too
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(f"c{c}__v{i}" for c in range(3) for i in range(8)) + "\n")
    with pytest.raises(ConfigError, match="no training samples left"):
        run_split(SplitConfig(src=(raw,), out=tmp_path / "o2", val_fraction=0.25, holdout_ids=ids))


def test_ood_zero_and_fixed_ood_list(vgg_raw, tmp_path):
    run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "zero", ood=0))
    m0 = json.loads((tmp_path / "zero" / "manifest.json").read_text())
    assert m0["ood_categories"] == [] and "ood" not in m0["splits"] and len(m0["id_categories"]) == 6
    fixed = tmp_path / "ood.txt"
    fixed.write_text("# fixed\ncat 5\n")
    run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "fixed", ood_list=fixed, ood_samples=1000))
    m1, got = read_split(tmp_path / "fixed")
    assert m1["ood_categories"] == ["cat 5"] and len(got["ood"]) == 8
    with pytest.raises(ConfigError, match="disagrees"):
        run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "x", ood_list=fixed, ood=2))


def test_clear_errors(vgg_raw, tmp_path):
    with pytest.raises(ConfigError, match="--ood 3 is larger than the 2 categories"):
        run_split(vgg_config(vgg_raw, tmp_path / "o1", tmp_path, ood=3))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no shards") as e:
        run_split(SplitConfig(src=(empty,), out=tmp_path / "o2"))
    assert str(empty) in str(e.value)
    with pytest.raises(InputError, match="source folder not found"):
        run_split(SplitConfig(src=(tmp_path / "nope",), out=tmp_path / "o3"))
    # a shard listed in the index whose stats file is missing (unfinished extraction)
    broken = make_raw(tmp_path / "broken", vggsound_videos()[:6], shards=2)
    (broken / "shard-00001.stats.json").unlink()
    with pytest.raises(InputError, match="missing or unfinished") as e:
        run_split(SplitConfig(src=(broken,), out=tmp_path / "o4"))
    assert "index.csv" in str(e.value)
    # an existing split is not replaced without overwrite, and never a foreign folder
    run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "o5"))
    with pytest.raises(InputError, match="--overwrite"):
        run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "o5"))
    run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "o5", overwrite=True))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        run_split(SplitConfig(src=(vgg_raw,), out=tmp_path / "foreign", overwrite=True))
    with pytest.raises(ValueError):
        SplitConfig(val_fraction=1.5)


def test_cli_reads_config_and_flags_override(vgg_raw, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[split]\nseed = 5\nood = 1\nranks = 1\nworkers = 1\nsrc = ["{vgg_raw}"]\n')
    runner = CliRunner()
    res = runner.invoke(app, ["split", "--config", str(recipe), "--out", str(tmp_path / "s"), "--ood", "2"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["seed"] == 5 and len(m["ood_categories"]) == 2 and m["recipe"]["split"]["ranks"] == 1
    assert "train" in res.output and "samples" in res.output
    again = ["split", "--config", str(recipe), "--out", str(tmp_path / "s")]
    res = runner.invoke(app, again)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert runner.invoke(app, [*again, "--overwrite"]).exit_code == 0
    m2 = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert len(m2["ood_categories"]) == 1  # the recipe's ood = 1 now that no flag overrides it
    res = runner.invoke(app, ["split", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "source folder not found" in " ".join(res.output.split())
    res = runner.invoke(app, ["split", "--config", str(recipe), "--out", str(tmp_path / "u"), "--ood", "9"])
    assert res.exit_code == 2 and "larger than" in " ".join(res.output.split())


def test_recipes_split_tables_build():
    for name in ("vggsound", "ave", "demo"):
        cfg = build_config(
            SplitConfig, recipe_section(load_recipe(ROOT / "pipelines" / f"{name}.toml"), "split")
        )
        assert cfg.ranks >= 1
    vgg = build_config(
        SplitConfig, recipe_section(load_recipe(ROOT / "pipelines" / "vggsound.toml"), "split")
    )
    assert vgg.ood == 20 and vgg.categories == ROOT / "manifests" / "vggsound-common164.txt"
    assert vgg.ood_list == ROOT / "manifests" / "vggsound-ood20.txt"


def test_class_list_only_path_reproduces_committed_manifests(shared_data, tmp_path):
    meta = shared_data / "metadata" / "vggsound"
    stat, common = meta / "stat.csv", meta / "Common.txt"
    all_classes = read_class_file(stat)
    assert len(all_classes) == 309  # labels with commas are parsed as one class
    committed_id = read_class_file(ROOT / "manifests" / "vggsound-common164.txt")
    committed_ood = read_class_file(ROOT / "manifests" / "vggsound-ood20.txt")
    assert committed_id == sorted(read_class_file(common)) and len(committed_id) == 164
    assert len(committed_ood) == 20 and not set(committed_ood) & set(committed_id)
    assert set(committed_ood) <= set(all_classes)
    seed = build_config(
        SplitConfig, recipe_section(load_recipe(ROOT / "pipelines" / "vggsound.toml"), "split")
    ).seed
    # regenerate from the class list alone with the recipe's seed: the same files byte for byte
    paths = write_category_lists(stat, common, tmp_path, ood=20, seed=seed, list_name="vggsound")
    assert [p.name for p in paths] == ["vggsound-common164.txt", "vggsound-ood20.txt"]
    for p in paths:
        text = p.read_text().replace(f"--out {tmp_path}", "--out manifests")
        text = text.replace(str(meta), "../shared/data/metadata/vggsound")
        assert text == (ROOT / "manifests" / p.name).read_text()
    assert "Common.txt" in paths[0].read_text().splitlines()[2] and "164" in paths[0].read_text()
    # the CLI path does the same
    args = ["--class-list", str(stat), "--categories", str(common), "--ood", "20", "--seed", str(seed)]
    res = CliRunner().invoke(app, ["split", *args, "--list-name", "vggsound", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert read_class_file(tmp_path / "cli" / "vggsound-ood20.txt") == committed_ood
    # another seed gives another choice
    assert choose_ood(set(all_classes) - set(committed_id), 20, seed + 1) != committed_ood
    with pytest.raises(ConfigError, match="larger than the 145"):
        write_category_lists(stat, common, tmp_path / "x", ood=146, seed=seed, list_name="v")


def test_end_to_end_synthetic_corpus_extract_split_webdataset(tmp_path):
    """synthetic corpus -> aiaic-data extract -> aiaic-data split -> webdataset reads the split shards."""
    from skimage import color

    from aiaic.demo.corpus import CLASS_HUES, make_disambiguation_corpus

    videos = make_disambiguation_corpus(tmp_path / "videos", classes=3, videos_per_class=3, seconds=2)
    runner = CliRunner()
    opts = ["--layout", "folder", "--mode", "all", "--workers", "1", "--size", "64"]
    res = runner.invoke(app, ["extract", "--src", str(videos), "--out", str(tmp_path / "raw"), *opts])
    assert res.exit_code == 0, res.output
    opts = ["--config", str(ROOT / "pipelines" / "demo.toml"), "--val-fraction", "0.34"]
    res = runner.invoke(
        app, ["split", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "split"), *opts]
    )
    assert res.exit_code == 0, res.output
    manifest, got = read_split(tmp_path / "split")
    # demo recipe: one class held out as OOD; of the others' 3 videos one goes to val
    assert {n: i["samples"] for n, i in manifest["splits"].items()} == {"train": 8, "val": 4, "ood": 6}
    assert sorted(manifest["label_ids"]) == sorted(list(CLASS_HUES)[:3])
    assert len(manifest["ood_categories"]) == 1
    assert not {s.meta["video_id"] for s in got["train"]} & {s.meta["video_id"] for s in got["val"]}
    for s in got["train"] + got["val"] + got["ood"]:
        lab = color.rgb2lab(s.image / 255.0)
        hue = np.rad2deg(np.arctan2(lab[..., 2].mean(), lab[..., 1].mean())) % 360
        assert (
            abs((hue - CLASS_HUES[s.meta["label"]] + 180) % 360 - 180) < 10
        )  # the frame is its class colour
        assert s.mel.shape == (64, 97) and s.meta["split"] in ("train", "val", "ood")
    assert manifest["audio_stats"]["samples"] == 8
