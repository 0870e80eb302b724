"""training: AIHub preparation, synthetic covers, cached data, accelerate fine-tuning and Hub publishing for kordiff."""
