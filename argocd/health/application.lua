-- ArgoCD health of an Application seen as a resource of another (app of apps): its own
-- health. ArgoCD stopped assessing child Applications by default (1.8), so without this
-- the root would not wait for one sync wave (the CRDs, the operator) to be healthy before
-- starting the next.
local hs = {status = "Progressing", message = ""}
if obj.status ~= nil and obj.status.health ~= nil and obj.status.health.status ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
