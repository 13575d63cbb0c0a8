"""The credits a request holds: the unit price of its (backend, model), times the images asked for."""


def request_price(unit_price, task, params):
    if unit_price < 0:
        raise ValueError("unit price must be non-negative")
    count = params.get("n", 1) if task == "image" else 1
    return unit_price * count
