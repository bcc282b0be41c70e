"""The documented module layout: each documented name imports from its module as the package's own object."""

import importlib

import pytest

import mmdit_jax

DOCUMENTED = {
    "helpers": ["dot_product_attention_compat", "fallback_attention", "HAS_NATIVE_DOT_PRODUCT_ATTENTION"],
    "models": ["MMDiT"],
    "blocks": ["MMDiTBlock", "BlockModulation"],
    "layers": ["AdaptiveLayerNorm", "TimestepEmbedding", "sinusoidal_embedding"],
    "final_layer": ["ModulatedFinalLayer"],
    "in_context_models": ["InContextMMDiT"],
    "in_context_blocks": ["InContextMMDiTBlock"],
    "in_context_final_layer": ["SimpleFinalLayer"],
    "layer_stack": ["stack_blocks", "unstack_blocks"],
}


@pytest.mark.parametrize("module_name", list(DOCUMENTED))
def test_documented_names_are_the_package_objects(module_name):
    module = importlib.import_module(f"mmdit_jax.{module_name}")
    for name in DOCUMENTED[module_name]:
        assert getattr(module, name) is getattr(mmdit_jax, name), name


def test_classes_are_defined_where_documented():
    for module_name, names in DOCUMENTED.items():
        for name in names:
            value = getattr(mmdit_jax, name)
            if isinstance(value, type):
                assert value.__module__ == f"mmdit_jax.{module_name}", name


def test_package_exports_resolve():
    assert all(hasattr(mmdit_jax, name) for name in mmdit_jax.__all__)


def test_verify_installation_is_runnable():
    module = importlib.import_module("mmdit_jax.verify_installation")
    assert callable(module.main) and module.CHECKS
