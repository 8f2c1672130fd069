-- ArgoCD health of a DataProduct, from the operator's status.
-- Healthy when Ready; Degraded when non-compliant, invalid, failed, in conflict with an
-- object it does not own, or missing what it reads; Progressing otherwise.
local hs = {status = "Progressing", message = "waiting for the datamesh operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for the operator to observe generation " .. generation
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    if condition.status == "True" then
      hs.status = "Healthy"
    elseif condition.reason == "NonCompliant" or condition.reason == "ProvisioningFailed"
        or condition.reason == "InvalidSpec" or condition.reason == "ChildConflict"
        or condition.reason == "UpstreamMissing" or condition.reason == "Cycle" then
      hs.status = "Degraded"
    end
    hs.message = condition.message or ""
    return hs
  end
end
return hs
