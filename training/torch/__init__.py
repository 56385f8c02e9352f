"""The PyTorch front end: ``AnalogKFAC``, K-FAC for any model with every factor solve through our ``Solver``
protocol (exact or a simulated circuit); its per-layer K-FAC is the NumPy loop's ``training.kfac_layer.KFACLayer``.
Needs ``torch`` (``pip install -e ".[torch]"``)."""
from training.torch.optimizer import AnalogKFAC, kfac_solver

__all__ = ["AnalogKFAC", "kfac_solver"]
