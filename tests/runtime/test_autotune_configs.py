"""skc.autotune checks its configs and key when it wraps a function (was: a TypeError from inside a timing run)."""
import pytest

import skc


def launch(x, BLOCK=64):
    pass


@pytest.mark.parametrize("configs", ["ab", [64, 128], [{"BLOCK": 64}, None], [{1: 64}], {"BLOCK": 64}])
def test_configs_that_are_not_dicts_of_keywords_are_refused(configs):
    with pytest.raises(skc.SkcError, match="dict"):
        skc.autotune(configs=configs)(launch)


def test_a_key_that_is_not_a_function_is_refused():
    with pytest.raises(skc.SkcError, match="key is a function"):
        skc.autotune(configs=[{"BLOCK": 64}], key=5)(launch)


def test_good_configs_still_wrap():
    tuner = skc.autotune(configs=({"BLOCK": b} for b in (64, 128)), key=lambda x: x)(launch)
    assert tuner.configs == [{"BLOCK": 64}, {"BLOCK": 128}]
