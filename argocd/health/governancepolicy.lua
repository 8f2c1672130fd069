-- ArgoCD health of a GovernancePolicy: Healthy when every rule compiles (Valid=True),
-- Degraded when one does not, Progressing until the operator has looked at it.
local hs = {status = "Progressing", message = "waiting for the datamesh operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Valid" then
    if condition.status == "True" then
      hs.status = "Healthy"
    else
      hs.status = "Degraded"
    end
    hs.message = condition.message or ""
    return hs
  end
end
return hs
