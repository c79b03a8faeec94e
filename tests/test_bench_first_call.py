"""``fp4ref bench first-call``'s child processes: they time one statement in a new process
with the numba cache they are given."""

from fp4ref.bench import first_call


def test_a_child_times_its_statement(tmp_path):
    wall, cpu = first_call._child("sum(range(10**6))", str(tmp_path))
    assert 0 < wall < 60 and 0 <= cpu < 60


def test_every_operation_is_a_statement():
    for label, statement in first_call.OPERATIONS:
        compile(statement, label, "eval")
