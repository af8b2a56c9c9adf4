"""The .ts reader on hand-made files with known values, and the shipped JapaneseVowels."""

import sys
import textwrap

import numpy as np
import pytest

from jlstm.data import list_ucr_datasets, load_ts, load_ucr

MULTIVARIATE = """\
# a comment line
% another style of comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true cat dog
@data
1.5,2,?:0.25,-1,3e-1:dog
4,5:6,7:cat
"""

UNIVARIATE = """\
@problemname Uni
@univariate true
@equallength true
@serieslength 3
@classlabel true 1 2
@data
0.1,0.2,0.3:2
1,-2,NaN:1
"""

REGRESSION = """\
@problemName Reg
@univariate true
@equalLength true
@targetLabel true
@data
1,2,3:0.5
4,5,6:-2
"""


def write(tmp_path, text, name="toy.ts"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_multivariate_unequal_missing_and_string_labels(tmp_path):
    series, labels, header = load_ts(write(tmp_path, MULTIVARIATE))
    nan = np.nan
    np.testing.assert_array_equal(
        series[0], np.array([[1.5, 0.25], [2.0, -1.0], [nan, 0.3]], np.float32)
    )
    np.testing.assert_array_equal(series[1], np.array([[4, 6], [5, 7]], np.float32))
    assert series[0].dtype == np.float32
    assert labels.tolist() == ["dog", "cat"]
    assert header["problemname"] == "Toy"
    assert header["missing"] is True and header["univariate"] is False
    assert header["dimensions"] == 2 and header["class_values"] == ["cat", "dog"]


def test_load_ucr_maps_labels_in_header_order(tmp_path):
    ds = load_ucr(write(tmp_path, MULTIVARIATE))
    assert ds.targets.tolist() == [1, 0]  # dog is the header's second class
    assert ds.num_classes == 2 and ds.class_names == ("cat", "dog")
    assert ds.feature_size == 2 and ds.lengths.tolist() == [3, 2]


def test_train_and_test_share_the_mapping(tmp_path):
    folder = tmp_path / "Toy"
    folder.mkdir()
    write(folder, MULTIVARIATE, "Toy_TRAIN.ts")
    write(folder, MULTIVARIATE.replace("4,5:6,7:cat", "4,5:6,7:dog"), "Toy_TEST.ts")
    assert load_ucr(folder, "train").targets.tolist() == [1, 0]
    test = load_ucr(folder, "TEST")
    assert test.targets.tolist() == [1, 1] and test.name == "Toy/test"


def test_univariate_lowercase_keys_nan_and_crlf(tmp_path):
    path = tmp_path / "uni.ts"
    path.write_bytes(UNIVARIATE.replace("\n", "\r\n").encode())
    series, labels, header = load_ts(path)
    expected = np.array([[0.1, 0.2, 0.3], [1, -2, np.nan]], np.float32)
    np.testing.assert_array_equal(np.stack(series)[:, :, 0], expected)
    assert labels.tolist() == ["2", "1"]
    assert header["equallength"] is True and header["serieslength"] == 3
    assert load_ucr(path).targets.tolist() == [1, 0]


def test_regression_targets(tmp_path):
    series, labels, header = load_ts(write(tmp_path, REGRESSION))
    assert labels.dtype == np.float64 and labels.tolist() == [0.5, -2.0]
    assert header["targetlabel"] is True and header["classlabel"] is False
    ds = load_ucr(tmp_path / "toy.ts")
    assert ds.num_classes is None and ds.targets.dtype == np.float32
    assert ds.targets.tolist() == [0.5, -2.0]
    np.testing.assert_array_equal(ds.inputs[1][:, 0], [4, 5, 6])


def test_timestamped_values(tmp_path):
    text = """\
    @timeStamps true
    @classLabel true a b
    @data
    (2007-01-01 00:00:00,241.97),(2007-01-01 00:01:00,?):b
    (2007-01-02 00:00:00,1.5),(2007-01-02 00:01:00,2.5):a
    """
    series, labels, _ = load_ts(write(tmp_path, text))
    np.testing.assert_array_equal(series[0][:, 0], np.array([241.97, np.nan], np.float32))
    np.testing.assert_array_equal(series[1][:, 0], [1.5, 2.5])
    assert labels.tolist() == ["b", "a"]


def test_unlabelled_file(tmp_path):
    path = write(tmp_path, "@problemName U\n@data\n1,2:3,4\n")
    series, labels, _ = load_ts(path)
    assert labels is None and series[0].shape == (2, 2)
    with pytest.raises(ValueError, match="has no labels"):
        load_ucr(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("@univariate maybe\n@data\n1:1\n", "@univariate must be true or false"),
        ("@classLabel true\n@data\n1:1\n", "must list the labels"),
        ("@dimensions two\n@data\n1:1\n", "@dimensions must be an integer"),
        ("@classLabel true 1\n1,2:1\n", "expected a '#' comment or an '@key value' header"),
        ("@classLabel true 1\n", "no @data line"),
        ("@classLabel true 1\n@data\n", "no cases after @data"),
        ("@classLabel true 1\n@data\n1,2\n", "expected channels, then ':' and the label"),
        ("@classLabel true 1\n@data\n1,x:1\n", "values must be numbers or '\\?'"),
        ("@classLabel true 1\n@data\n1,2:3:1\n", "same length; got lengths \\[2, 1\\]"),
        ("@classLabel true 1\n@data\n1:2:1\n1:1\n", "expected 2 channels .* got 1"),
        ("@classLabel true 1 2\n@data\n1:3\n", "3: the label '3' is not among @classLabel"),
        ("@targetLabel true\n@data\n1:high\n", "regression targets must be numbers"),
        ("@dimensions 3\n@classLabel true 1\n@data\n1:2:1\n", "@dimensions 3, but cases have 2"),
        ("@univariate true\n@classLabel true 1\n@data\n1:2:1\n", "@univariate true, but"),
        ("@equalLength true\n@classLabel true 1\n@data\n1:1\n1,2:1\n", "lengths range 1..2"),
        ("@seriesLength 4\n@equalLength true\n@data\n1,2\n", "@seriesLength 4, but"),
    ],
)
def test_malformed_files_raise(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_ts(write(tmp_path, text))


def test_bad_arguments_raise(tmp_path):
    path = write(tmp_path, MULTIVARIATE)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'; got 'valid'"):
        load_ucr("JapaneseVowels", "valid")
    with pytest.raises(ValueError, match="split must be 'train' or 'test' for dataset"):
        load_ucr("JapaneseVowels")
    with pytest.raises(ValueError, match="split must be None when name_or_path is a .ts file"):
        load_ucr(path, "train")
    with pytest.raises(ValueError, match="JapaneseVowels.*path to a .ts file.*got 'NoSuchSet'"):
        load_ucr("NoSuchSet", "train")
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        load_ucr(tmp_path / "missing.ts")
    with pytest.raises(FileNotFoundError, match="no test file for 'Toy'"):
        (tmp_path / "Toy").mkdir()
        write(tmp_path / "Toy", MULTIVARIATE, "Toy_TRAIN.ts")
        load_ucr(tmp_path / "Toy", "test")


def test_japanese_vowels_shipped_files():
    train, test = load_ucr("JapaneseVowels", "train"), load_ucr("japanese_vowels", "test")
    assert (len(train), len(test)) == (270, 370)
    assert train.feature_size == test.feature_size == 12
    assert (train.lengths.min(), train.lengths.max()) == (7, 26)
    assert (test.lengths.min(), test.lengths.max()) == (7, 29)
    assert train.num_classes == test.num_classes == 9
    assert train.class_names == tuple(str(k) for k in range(1, 10))
    assert np.bincount(train.targets).tolist() == [30] * 9  # 30 utterances per speaker
    assert np.bincount(test.targets).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    assert train.targets[0] == 0  # the first case is speaker "1"
    assert train.inputs[0][0, 0] == np.float32(1.860936)  # first value, channel 0
    assert train.inputs[0][0, 1] == np.float32(-0.207383)  # first value, channel 1
    assert not any(np.isnan(x).any() for x in train.inputs + test.inputs)
    assert "JapaneseVowels" in list_ucr_datasets()


def test_finds_aeon_files_without_importing_aeon(tmp_path, monkeypatch):
    package = tmp_path / "site" / "aeon"
    folder = package / "datasets" / "data" / "FakeSet"
    folder.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('aeon must not be imported')\n")
    write(folder, REGRESSION, "FakeSet_TRAIN.ts")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "aeon", raising=False)
    assert load_ucr("fake_set", "train").targets.tolist() == [0.5, -2.0]
    assert "FakeSet" in list_ucr_datasets()
    assert "aeon" not in sys.modules
