"""Energy of full fine-tuning, the counterfactual every saving is measured against.

    E*_k = E_k F*_k / F_k          E_k  energy measured for epoch k (kWh)
                                   F_k  FLOPs it executed; F*_k  FLOPs full fine-tuning executes

NB: this assumes energy proportional to executed FLOPs within an epoch (same GPU, same batch
shapes). Fixed power (idle GPU, host, RAM) does not shrink with rho, so E* is an upper bound of
what full fine-tuning would have drawn. Used by the savings the API and dashboard show
(service/savings.py) and by the CO2-budget policy (job_policy.JobRho).
"""

from __future__ import annotations


def full_ft_energy_kwh(energy_kwh: float | None, executed_flops: float,
                       full_ft_flops: float) -> float | None:
    """E* for one epoch; None without a measured energy. An epoch that executed no FLOPs keeps
    its measured energy (nothing to scale)."""
    if energy_kwh is None:
        return None
    if executed_flops <= 0:
        return energy_kwh
    return energy_kwh * full_ft_flops / executed_flops
