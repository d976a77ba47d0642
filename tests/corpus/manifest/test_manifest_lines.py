"""Line counts: the manifest's own nlines, else meta.bin's (CPM-Bee's path rule), else unknown."""

from corpus.manifest.lines import line_count, line_counts, resolve_dataset_path
from schemas import DatasetEntry, MixtureManifest
from manifest_fixtures import entry, write_dataset


def test_recorded_nlines_win_over_meta_bin(tmp_path):
    write_dataset(tmp_path / "wiki", [5])
    count = line_count(DatasetEntry(**entry("lm", "wiki", nlines=7)), tmp_path)
    assert (count.nlines, count.source) == (7, "manifest")


def test_missing_nlines_are_read_from_meta_bin_relative_to_the_manifest_folder(tmp_path):
    write_dataset(tmp_path / "data" / "wiki", [5, 6])
    count = line_count(DatasetEntry(**entry("lm", "wiki", path="data/wiki")), tmp_path)
    assert (count.nlines, count.source) == (11, "meta.bin")


def test_masked_files_count_as_cpm_bee_trainer_counts_them(tmp_path):
    # DistributedDataset._nlines sums every FileInfo; the mask only stops reads.
    write_dataset(tmp_path / "wiki", [5, 6], masks=[False, True])
    assert line_count(DatasetEntry(**entry("lm", "wiki")), tmp_path).nlines == 11


def test_absolute_paths_are_used_as_is(tmp_path):
    folder = write_dataset(tmp_path / "elsewhere" / "wiki", [3])
    assert resolve_dataset_path(str(folder), "/nonexistent") == folder
    assert line_count(DatasetEntry(**entry("lm", "wiki", path=str(folder))), "/nonexistent").nlines == 3


def test_missing_dataset_is_unknown_with_a_reason(tmp_path):
    count = line_count(DatasetEntry(**entry("lm", "wiki")), tmp_path)
    assert count.nlines is None and count.source == "unknown"
    assert "no meta.bin in" in count.why_unknown and "wiki" in count.why_unknown


def test_corrupt_meta_bin_is_unknown_not_a_crash(tmp_path):
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "meta.bin").write_text("{not json\n")
    count = line_count(DatasetEntry(**entry("lm", "wiki")), tmp_path)
    assert count.nlines is None and "unreadable" in count.why_unknown


def test_no_base_dir_means_manifest_stats_only(tmp_path):
    write_dataset(tmp_path / "wiki", [5])
    assert line_count(DatasetEntry(**entry("lm", "wiki")), None).nlines is None


def test_line_counts_are_keyed_by_identity(tmp_path):
    manifest = MixtureManifest.model_validate([entry("lm", "a", nlines=1), entry("qa", "a", nlines=2)])
    assert {k: v.nlines for k, v in line_counts(manifest, tmp_path).items()} == {"lm.a": 1, "qa.a": 2}
