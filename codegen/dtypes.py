"""The dtypes the LLVM backend computes in, and their IR types and sizes.

Apart from :mod:`codegen.irgen` (which re-exports them) so that checking a graph before
compiling it (:func:`codegen.registry.check_lowerable`) needs no IR-generation module.
"""

#: register type of each supported dtype
IR_TYPE = {
    "float32": "float", "float64": "double", "int64": "i64", "int32": "i32", "int16": "i16",
    "int8": "i8", "uint8": "i8", "bool": "i1",
}
#: in-memory type (numpy stores bool as one byte)
MEM_TYPE = {**IR_TYPE, "bool": "i8"}
ITEMSIZE = {"float32": 4, "float64": 8, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
            "uint8": 1, "bool": 1}

__all__ = ["IR_TYPE", "ITEMSIZE", "MEM_TYPE"]
