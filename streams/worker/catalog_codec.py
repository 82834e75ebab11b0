"""The catalog table's value: an item and its vector, as every worker writes and reads it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from online.events import Item


def catalog_value(item: Item, vector: npt.NDArray[np.float32]) -> bytes:
    """Catalog table value: u32 JSON length | item JSON | float32 vector bytes."""
    body = item.model_dump_json().encode()
    return len(body).to_bytes(4, "little") + body + np.asarray(vector, dtype="<f4").tobytes()


def parse_catalog_value(value: bytes, dim: int) -> tuple[Item, npt.NDArray[np.float32]]:
    """(item, float32[dim] vector) of a catalog table value; ValueError for a vector of another length."""
    length = int.from_bytes(value[:4], "little")
    item = Item.model_validate_json(value[4 : 4 + length])
    vector = np.frombuffer(value, dtype="<f4", offset=4 + length).astype(np.float32)
    if vector.shape != (dim,):
        raise ValueError(f"catalog vector of {item.item_id} has {vector.shape[0]} dims, expected {dim}")
    return item, vector
