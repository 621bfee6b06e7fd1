"""The work units of `make cover`'s two workers (tests/conftest.py `work_unit`)."""

from __future__ import annotations

import pytest

from tests.conftest import work_unit


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/api/test_files.py::test_upload[sqlite-ceph]",
        "tests/storage/test_contract.py::test_put[ceph]",
        "tests/faults/test_killed.py::test_s3_killed[ceph-sqlite]",
        "tests/storage/test_ceph.py::test_a_wrong_secret_is_refused_by_ceph_without_showing_it",
    ],
)
def test_every_test_of_ceph_is_one_unit(nodeid: str) -> None:
    """The session's one cluster starts on one worker only."""
    assert work_unit(nodeid) == "ceph"


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/api/test_files.py::test_upload[sqlite-local]",
        "tests/api/test_files.py::test_upload[postgresql-s3-long name]",
        "tests/uploads/test_tus.py::test_patch[0-mysql-local]",
    ],
)
def test_each_test_on_the_session_app_is_a_unit_of_its_own(nodeid: str) -> None:
    assert work_unit(nodeid) == nodeid


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/web/test_page.py::test_sign_in",
        "tests/faults/test_killed.py::test_s3_killed[moto]",
        "tests/storage/test_contract.py::test_put[local]",
        "tests/storage/test_cephalopod.py::test_x[cephalopod]",
    ],
)
def test_other_tests_stay_with_their_module(nodeid: str) -> None:
    assert work_unit(nodeid) == nodeid.split("::")[0]
