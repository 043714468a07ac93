from edgecc.report.pareto import pareto_front


def test_constructed_frontier_is_exact():
    points = [
        ("base", (10.0, 0.0)),   # slowest, exact: on the front
        ("a", (5.0, 0.5)),       # on the front
        ("b", (6.0, 0.6)),       # dominated by a
        ("c", (2.0, 3.0)),       # fastest: on the front
        ("d", (2.0, 4.0)),       # dominated by c (same latency, worse drop)
        ("e", (5.0, 0.5)),       # equal to a: kept with it
        ("f", (11.0, 0.0)),      # dominated by base
    ]
    assert pareto_front(points) == ["base", "a", "c", "e"]


def test_three_axes_and_trivial_cases():
    assert pareto_front([]) == []
    assert pareto_front([("only", (1.0, 1.0, 1.0))]) == ["only"]
    pts = [("x", (1.0, 2.0, 3.0)), ("y", (1.0, 2.0, 2.0)), ("z", (0.5, 5.0, 9.0))]
    assert pareto_front(pts) == ["y", "z"]
