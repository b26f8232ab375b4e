"""What reading many files must not keep: doctor reads thousands of files in one process (issue 23)."""

import pickle

from disagg.schemas import source


def test_reading_a_file_keeps_no_node_in_the_shared_constructor():
    docs = source.load_documents("a.yaml", "a: 1\nb: [x, 2.5, true]\nc: {d: 2020-01-01}\n")
    assert docs
    # every scalar node of every file stayed referenced here before: memory grew with the number of files
    assert source._constructor.constructed_objects == {}


def test_config_error_survives_a_worker_process_boundary():
    err = source.ConfigError("a.yaml", 3, 4, "invalid value: x")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.line, back.column, back.message, str(back)) == (
        "a.yaml", 3, 4, "invalid value: x", "a.yaml:3:4: invalid value: x")
