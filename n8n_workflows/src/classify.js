// Classify each item's signal with the taxonomy (the code above this line is the shared interpreter).
return $input.all().map((item) => ({ json: { ...item.json, classification: classify(item.json.signal) } }));
