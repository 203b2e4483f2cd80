# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import pytest

from monai_jepa.data.sources import _cache_rate
from monai_jepa.utils import as_bool


def test_as_bool_reads_command_line_spellings_and_names_the_option():
    assert [as_bool(v, "x") for v in (True, 1, "true", "True", " YES ", "on", "1")] == [True] * 7
    assert [as_bool(v, "x") for v in (False, 0, "false", "False", "no", "off", "0", "")] == [False] * 8
    for bad in ("maybe", 2, None, 0.5):
        with pytest.raises(ValueError, match=r"`skip_bad` must be true or false, got"):
            as_bool(bad, "skip_bad")


def test_cache_takes_the_strings_a_command_line_gives():
    """``--cache false`` arrives as the string "false": it used to fail with "could not convert string to float"."""
    assert (
        _cache_rate("false", None),
        _cache_rate("True", None),
        _cache_rate(0.5, None),
        _cache_rate("0.25", None),
    ) == (
        0.0,
        1.0,
        0.5,
        0.25,
    )
    with pytest.raises(ValueError, match=r"`cache` must be true, false or a cache rate in \[0, 1\], got 'fast'"):
        _cache_rate("fast", None)
    with pytest.raises(ValueError, match="cache rate"):
        _cache_rate(1.5, None)
