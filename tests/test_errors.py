from __future__ import annotations

from flyk import errors


def test_every_error_class_has_a_documented_exit_code() -> None:
    table = {row.code: row for row in errors.exit_code_table()}
    assert table[0].meaning == "success"
    documented = {name for row in table.values() for name in row.errors}
    stack: list[type[errors.FlykError]] = [errors.FlykError]
    while stack:
        cls = stack.pop()
        assert cls.__name__ in documented
        assert cls.__name__ in (errors.__doc__ or ""), (
            f"{cls.__name__} missing from the tree drawing"
        )
        stack.extend(cls.__subclasses__())


def test_capacity_error_carries_region_and_alternatives() -> None:
    err = errors.CapacityError("jnb is full", region="jnb", alternatives=("bom", "lhr"))
    assert err.exit_code == 8
    assert err.alternatives == ("bom", "lhr")
    assert isinstance(err, errors.FlykError)
