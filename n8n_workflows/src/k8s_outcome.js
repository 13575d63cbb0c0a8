// The Job is deleted (propagationPolicy Background, whatever happened): carry on with its outcome, from
// the log reader when this attempt got that far, else from the status reader.
const attempt = $('Attempt').first().json.attempt;
const fromLog = $('Read pod log').isExecuted ? $('Read pod log').first().json : null;
const outcome = fromLog && fromLog.attempt === attempt && fromLog.k8s && fromLog.k8s.name === $('Read Job status').first().json.k8s.name
  ? fromLog : $('Read Job status').first().json;
return [{ json: outcome }];
