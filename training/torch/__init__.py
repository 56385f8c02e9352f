"""The PyTorch front end: ``AnalogKFAC``, K-FAC for any model with every factor solve through our ``Solver``
protocol (exact or a simulated circuit). Needs ``torch`` (``pip install -e ".[torch]"``)."""
from training.torch.kfac_layer import KFACLayer
from training.torch.optimizer import AnalogKFAC, kfac_solver

__all__ = ["AnalogKFAC", "KFACLayer", "kfac_solver"]
