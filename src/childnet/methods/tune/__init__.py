"""tune: fine-tune a pretrained parent on a new task through a child sub-network.

vanilla (baseline), Child-Tuning_F / Child-Tuning_D (Xu et al. 2021) and attention-guided weight
mixup with bi-level optimisation (Somayajula et al. 2024), all on the one training loop.
"""
