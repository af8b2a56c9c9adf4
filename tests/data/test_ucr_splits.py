"""The TEST split of a UCR/UEA set is read against the TRAIN split: one class
mapping (TRAIN's), the same channels, the same kind of label."""

import pytest

from jlstm.data import DataError, load_ucr

TRAIN = """\
@problemName Toy
@dimensions 2
@classLabel true cat dog bird
@data
1,2:3,4:cat
5,6:7,8:dog
9,1:2,3:bird
"""


def make_set(tmp_path, test_text, train_text=TRAIN):
    folder = tmp_path / "Toy"
    folder.mkdir()
    (folder / "Toy_TRAIN.ts").write_text(train_text)
    (folder / "Toy_TEST.ts").write_text(test_text)
    return folder


def test_test_header_in_another_order_keeps_the_train_mapping(tmp_path):
    reordered = TRAIN.replace("cat dog bird", "bird dog cat")
    folder = make_set(tmp_path, reordered)
    train, test = load_ucr(folder, "train"), load_ucr(folder, "test")
    assert train.targets.tolist() == test.targets.tolist() == [0, 1, 2]
    assert test.class_names == train.class_names == ("cat", "dog", "bird")


def test_a_test_class_that_train_lacks_is_named(tmp_path):
    text = TRAIN.replace("cat dog bird", "cat dog bird fish") + "1,1:1,1:fish\n"
    folder = make_set(tmp_path, text)
    with pytest.raises(
        DataError, match=r"Toy_TEST.ts:8: class 'fish' is not a class of .*Toy_TRAIN"
    ):
        load_ucr(folder, "test")


def test_test_with_other_channels_is_an_error(tmp_path):
    text = "@classLabel true cat dog bird\n@data\n1,2:3,4:5,6:cat\n"
    folder = make_set(tmp_path, text)
    with pytest.raises(DataError, match=r"Toy_TEST.ts: cases have 3 channels; .*TRAIN.ts has 2"):
        load_ucr(folder, "test")


def test_test_with_another_kind_of_label_is_an_error(tmp_path):
    text = "@targetLabel true\n@data\n1,2:3,4:0.5\n"
    folder = make_set(tmp_path, text)
    with pytest.raises(DataError, match=r"Toy_TEST.ts: regression targets .*TRAIN.ts has class"):
        load_ucr(folder, "test")


def test_a_missing_test_file_is_a_data_error(tmp_path):
    folder = tmp_path / "Toy"
    folder.mkdir()
    (folder / "Toy_TRAIN.ts").write_text(TRAIN)
    with pytest.raises(DataError, match=r"no test file for 'Toy': .*Toy_TEST.ts does not exist"):
        load_ucr(folder, "test")


def test_explicit_classes_for_a_lone_file(tmp_path):
    path = tmp_path / "lone.ts"
    path.write_text(TRAIN.replace("cat dog bird", "bird dog cat"))
    assert load_ucr(path, classes=("cat", "dog", "bird")).targets.tolist() == [0, 1, 2]
    with pytest.raises(DataError, match=r"lone.ts:7: class 'bird' is not among classes"):
        load_ucr(path, classes=("cat", "dog"))
