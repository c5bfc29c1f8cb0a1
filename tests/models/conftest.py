import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine's cores are shared; tiny models gain nothing from intra-op threads.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
