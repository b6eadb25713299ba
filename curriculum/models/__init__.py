"""Base models, tokenizers and the chat format both training and probing see: where a base comes from (bases), loading
it (load), where it runs and in what dtype (placement), hyperword tokens (tokens), chat pairs and their token ids
(chat) and the on-disk cache of those ids (tokencache). Imports graph only.
"""
