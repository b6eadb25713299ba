"""One LoRA stage: its inputs in one place and their hash (stagespec), the loop that trains it in rounds (train),
across processes through Accelerate (launch), the memory and disk it may use (memory, diskspace), its length in
steps (sizing) and the seal on the adapter it saves (integrity). Imports graph, stats, models and loading.
"""
